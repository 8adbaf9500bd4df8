"""The demo's phases: what ``switchback demo`` shows once everything runs.

Each phase is an ``async def phase_x(demo: Demo) -> None`` that talks to Switchback over HTTP
and prints through ``demo.out``; ``PHASES`` is their order, so a new phase is one function
plus one line there. An admin endpoint answering 404 is skipped with "(not available in this
build)", so the demo runs against any build of the proxy.

    1. split         a dozen clients send a few requests each; a table shows who served them
                     (X-Served-By) and whether a Deprecation header came back
    2. rollout       POST /rollout; while simulated devices keep sending traffic, the candidate's
                     share is printed as the steps advance (GET /status)
    3. deprecations  GET /deprecations: which client used or received which deprecated element
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from proxy.admin.views import describe_rollout
from proxy.core.report import format_table
from proxy.demo.sample_api import STATE
from proxy.schema import Config

TOKEN = "dev-token"  # the admin token the demo gives Switchback
CLIENTS = (
    "mobile-ios",
    "web-app",
    "beta-app",
    "legacy-ios",
    *(f"partner-{i}" for i in range(1, 9)),
)
LEGACY_POSTERS = ("legacy-ios", "partner-1")  # still send the deprecated options.legacy flag
DEVICES = tuple(f"device-{i:03d}" for i in range(1, 201))  # many ids, so shares track weights
LEDGER_FLUSH_WAIT = 2.5  # telemetry.flush_seconds in dev.yaml is 2: let the last batch land


@dataclass
class Demo:
    """What the phases share: the config, the running pieces and an HTTP session."""

    config: Config
    work: Path
    session: aiohttp.ClientSession
    proxy: asyncio.subprocess.Process
    green: web.Application
    fail_rate: float = 0.0  # green's failure share during the rollout (--fail-rate)
    out: Callable[[str], None] = print
    notes: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{self.config.listen}"

    @property
    def admin(self) -> str:
        return f"http://{self.config.admin.listen}"

    @property
    def log(self) -> Path:
        return self.work / "switchback.log"


async def admin_call(demo: Demo, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = demo.admin + path
    async with demo.session.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data


def columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# --- phase 1: the split -----------------------------------------------------------------------

SPLIT_REQUESTS: tuple[tuple[str, str], ...] = (
    ("GET", "/users/1"),
    ("GET", "/users/2"),
    ("GET", "/users?sort_by=name"),
    ("GET", "/v0/users/1"),
    ("POST", "/users"),
)


@dataclass(frozen=True)
class Answer:
    status: int
    served_by: str
    deprecated: bool


async def send(demo: Demo, client: str, method: str, path: str) -> Answer:
    headers = {"X-Client-Id": client}
    body = None
    if method == "POST":
        body = {"name": f"created by {client}", "options": {"legacy": True}}
    async with demo.session.request(method, demo.base + path, headers=headers, json=body) as resp:
        await resp.read()
        served = resp.headers.get("X-Served-By", "?")
        return Answer(resp.status, served, "Deprecation" in resp.headers)


async def phase_split(demo: Demo) -> None:
    weights = ", ".join(f"{k} {v:g}%" for k, v in demo.config.traffic.weights.items())
    demo.out(f"\n== 1. split: {len(CLIENTS)} clients, {weights} ==\n")
    pinned = {client for clients in demo.config.traffic.pins.values() for client in clients}
    header = ["CLIENT", "SERVED BY", *(f"{m} {p}" for m, p in SPLIT_REQUESTS)]
    rows = [header]
    for client in CLIENTS:
        cells, served = [], set()
        for method, path in SPLIT_REQUESTS:
            if method == "POST" and client not in LEGACY_POSTERS:
                cells.append("-")
                continue
            answer = await send(demo, client, method, path)
            served.add(answer.served_by)
            cells.append(f"{answer.status}{' dep' if answer.deprecated else ''}")
        who = "+".join(sorted(served))
        if client in pinned:
            who += " (pinned)"
        rows.append([client, who, *cells])
    demo.out(columns(rows))
    demo.out(
        "\ndep: the response carried a Deprecation header (with Sunset and Link headers).\n"
        "POST /users sends the deprecated options.legacy flag. Each client stays on one\n"
        "release: the split hashes its X-Client-Id; pinned clients are named in the config."
    )


# --- phase 2: the rollout ---------------------------------------------------------------------


class Traffic:
    """Simulated devices sending GET /users/1 until stopped; counts who served them, and how
    many of those answers were 5xx, by release."""

    def __init__(self, demo: Demo, workers: int = 8, pause: float = 0.05) -> None:
        self.demo = demo
        self.served: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self.tasks = [asyncio.create_task(self._run(i, workers, pause)) for i in range(workers)]

    async def _run(self, offset: int, step: int, pause: float) -> None:
        for n in range(offset, sys.maxsize, step):
            try:
                answer = await send(self.demo, DEVICES[n % len(DEVICES)], "GET", "/users/1")
            except aiohttp.ClientError:
                answer = Answer(0, "error", False)
            self.served[answer.served_by] += 1
            if answer.status >= 500 or answer.status == 0:
                self.failed[answer.served_by] += 1
            await asyncio.sleep(pause)

    def take(self) -> tuple[collections.Counter[str], collections.Counter[str]]:
        """(served, failed) since the last call."""
        taken = self.served, self.failed
        self.served, self.failed = collections.Counter(), collections.Counter()
        return taken

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def phase_rollout(demo: Demo, poll: float = 2.5) -> None:
    rollout = demo.config.rollout
    steps = ", ".join(f"{s:g}%" for s in rollout.steps)
    demo.out(f"\n== 2. rollout: steps {steps}, {rollout.step_seconds:g} s each ==\n")
    if demo.fail_rate:
        demo.green[STATE].fail_rate = demo.fail_rate
        demo.out(f"(green now fails {demo.fail_rate:.0%} of its requests: expect a rollback)")
    traffic = Traffic(demo)
    try:
        status, answer = await admin_call(demo, "POST", "/rollout")
        if status == 404:
            demo.out("(not available in this build)")
            return
        if status != 200:
            demo.out(f"POST /rollout answered {status}: {answer.get('error', answer)}")
            return
        candidate = answer["candidate"]
        started = time.monotonic()
        deadline = started + len(rollout.steps) * rollout.step_seconds + 30
        state = answer["rollout"]["state"]
        while state == "ramping" and time.monotonic() < deadline:
            await asyncio.sleep(poll)
            _, answer = await admin_call(demo, "GET", "/status")
            state = answer["rollout"]["state"]
            served, failed = traffic.take()
            total = sum(served.values())
            share = served[candidate] / total if total else 0.0
            failures = f" ({failed[candidate]} were 5xx)" if failed[candidate] else ""
            demo.out(
                f"  +{time.monotonic() - started:>3.0f} s  {candidate} served {share:>4.0%} of "
                f"{total:>3} requests{failures}   {describe_rollout(answer['rollout'], candidate)}"
            )
        if state == "ramping":
            demo.out("  (still ramping; it goes on in the background)")
        elif state == "rolled_back":
            demo.out(f"\nRolled back automatically: {answer['rollout'].get('reason')}")
        elif state == "awaiting_promotion":
            demo.notes.append(f"{candidate} carries all traffic and awaits promotion")
    finally:
        await traffic.stop()
        demo.green[STATE].fail_rate = 0.0


# --- phase 3: the deprecation report ----------------------------------------------------------


async def phase_deprecations(demo: Demo) -> None:
    demo.out("\n== 3. deprecations: who used or received what ==\n")
    await asyncio.sleep(LEDGER_FLUSH_WAIT)
    status, report = await admin_call(demo, "GET", "/deprecations")
    if status == 404:
        demo.out("(not available in this build)")
        return
    if status != 200:
        demo.out(f"GET /deprecations answered {status}: {report}")
        return
    # The per-element verdicts as `switchback report` prints them, then one line per client.
    elements = [{**e, "clients": []} for e in report["elements"]]
    demo.out(format_table({**report, "elements": elements}).rstrip())
    demo.out("\n" + exposure_matrix(report["elements"]))
    demo.out(
        "\nCounts per client: fields were received (exposure); endpoints, query parameters and"
        "\nrequest fields were sent (use). `switchback report` lists every client."
    )


def exposure_matrix(elements: list[dict[str, Any]]) -> str:
    """Client x element counts; the rollout's simulated devices share one line."""
    named: dict[str, dict[str, int]] = {c: {} for c in CLIENTS}
    devices: dict[str, int] = collections.Counter()
    device_ids: set[str] = set()
    for element in elements:
        for usage in element["clients"]:
            client, count = usage["client"], int(usage["count"])
            if client in named:
                named[client][element["id"]] = count
            else:
                devices[element["id"]] += count
                device_ids.add(client)
    rows = [["CLIENT", *(e["id"] for e in elements)]]
    groups = list(named.items())
    if device_ids:
        groups.append((f"{len(device_ids)} simulated devices", devices))
    for client, counts in groups:
        rows.append(
            [client, *(f"{counts[e['id']]:,}" if e["id"] in counts else "-" for e in elements)]
        )
    return columns(rows)


PHASES: tuple[Callable[[Demo], Awaitable[None]], ...] = (
    phase_split,
    phase_rollout,
    phase_deprecations,
)
