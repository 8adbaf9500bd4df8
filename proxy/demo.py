"""``switchback demo``: the sample releases, Switchback in front, and traffic to watch.

Theory of operation. Blue and green (``proxy.sample_api``) run in this process on the ports
config/dev.yaml names; Switchback runs as a subprocess with that config, a fresh state
directory (so every demo starts at 90/10 with an empty ledger) and the admin token
``dev-token``. Then, in phases, each a function taking the shared ``Demo``:

    1. split         a dozen clients send a few requests each; a table shows who served them
                     (X-Served-By) and whether a Deprecation header came back
    2. rollout       POST /rollout; while simulated devices keep sending traffic, the candidate's
                     share is printed as the steps advance (GET /status)
    3. deprecations  GET /deprecations: which client used or received which deprecated element

An admin endpoint answering 404 is skipped with "(not available in this build)". Then the
demo prints what to try by hand and runs until Ctrl-C (``--no-wait``: exits after the phases),
and stops everything: Switchback first (SIGTERM, it drains), then the releases.

Exit status: 0 done (Ctrl-C included); 1 a port is busy, or Switchback failed to start or
died; 130 interrupted before the phases were done.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from proxy.cli import describe_rollout
from proxy.config import load_config
from proxy.config_schema import Config
from proxy.errors import ConfigError
from proxy.report import format_table
from proxy.sample_api import STATE, make_release_app

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "config" / "dev.yaml"
TOKEN = "dev-token"
CLIENTS = (
    "mobile-ios",
    "web-app",
    "beta-app",
    "legacy-ios",
    *(f"partner-{i}" for i in range(1, 9)),
)
LEGACY_POSTERS = ("legacy-ios", "partner-1")  # still send the deprecated options.legacy flag
DEVICES = tuple(f"device-{i:03d}" for i in range(1, 201))  # many ids, so shares track weights
READY_TIMEOUT = 30.0
LEDGER_FLUSH_WAIT = 2.5  # telemetry.flush_seconds in dev.yaml is 2: let the last batch land


class DemoError(Exception):
    """A reason the demo cannot go on; ``str(err)`` is the whole message."""


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


async def admin_call(demo: Demo, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = demo.admin + path
    async with demo.session.request(method, url, json=body, headers=headers) as resp:
        data = await resp.json(content_type=None) if resp.status != 204 else None
        return resp.status, data


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


# --- starting and stopping --------------------------------------------------------------------


def columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "//" in address else f"//{address}")
    if parts.hostname is None or parts.port is None:
        raise DemoError(f"{address}: expected host:port")
    return parts.hostname, parts.port


def check_ports(config: Config) -> None:
    """Refuse to start, naming the port, when any of the four addresses is taken."""
    wanted = {
        "the Switchback listener (listen)": config.listen,
        "the admin API (admin.listen)": config.admin.listen,
        **{f"the {name} release": rel.url for name, rel in config.releases.items()},
    }
    for what, address in wanted.items():
        host, port = host_port(address)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise DemoError(
                    f"port {port} on {host}, for {what} in {CONFIG.relative_to(REPO)}, is busy "
                    f"({exc.strerror}). Is another demo running? See: ss -ltnp 'sport = :{port}'"
                ) from None


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "  (no log)"
    return "\n".join(f"  | {line}" for line in text) or "  (empty log)"


async def start_release(name: str, url: str) -> tuple[web.AppRunner, web.Application]:
    app = make_release_app(name)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = host_port(url)
    await web.TCPSite(runner, host, port).start()
    return runner, app


async def start_proxy(work: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "SWITCHBACK_ADMIN_TOKEN": TOKEN,
        "SWITCHBACK_STATE_DIR": str(work / "state"),
    }
    with (work / "switchback.log").open("wb") as log:
        # A session of its own: Ctrl-C reaches only the demo, which stops Switchback in order.
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "run", "--config", str(CONFIG),
            cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def wait_ready(demo: Demo) -> None:
    url = demo.admin + "/readyz"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if demo.proxy.returncode is not None:
            raise DemoError(
                f"Switchback exited with status {demo.proxy.returncode} while starting; "
                f"its log ({demo.log}):\n{log_tail(demo.log)}"
            )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with demo.session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise DemoError(f"{url} not ready after {READY_TIMEOUT:g} s; log:\n{log_tail(demo.log)}")


async def stop_proxy(proc: asyncio.subprocess.Process, grace: float = 15.0) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()  # SIGTERM: Switchback drains in-flight requests, then exits
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def try_it(demo: Demo) -> str:
    sb = Path(sys.executable).with_name("switchback")
    cli = str(sb.relative_to(Path.cwd()) if sb.is_relative_to(Path.cwd()) else sb)
    if not sb.exists():  # not installed next to this Python: hope it is on PATH
        cli = "switchback"
    base, admin = demo.base, demo.admin
    # Asking for a release by name shows most on the one that carries less traffic now.
    _, status = await admin_call(demo, "GET", "/status")
    weights = status.get("weights") or demo.config.traffic.weights
    minor = min(sorted(weights), key=lambda name: weights[name])
    releases = "  ".join(f"{n}: {r.url}" for n, r in demo.config.releases.items())
    notes = "".join(f"\nNote: {note}." for note in demo.notes)
    return f"""
== try it ==
{notes}
Switchback {base}   admin {admin}   {releases}

  curl -i -H 'X-Client-Id: web-app' {base}/users/1          # Deprecation, Sunset, Link headers
  curl -i -H 'X-Client-Id: web-app' '{base}/users?sort_by=name'
  curl -i -H 'X-Client-Id: web-app' {base}/v0/users/1        # a deprecated endpoint
  curl -i -H 'X-Release: {minor}' {base}/users/1               # ask for a release by name
  curl -s {admin}/status
  curl -s {admin}/metrics | grep switchback_
  {cli} status
  {cli} report
  SWITCHBACK_ADMIN_TOKEN={TOKEN} {cli} rollback
  SWITCHBACK_ADMIN_TOKEN={TOKEN} {cli} promote

Switchback's log: {demo.log}
Press Ctrl-C to stop."""


async def wait_for_ctrl_c(demo: Demo) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    died = asyncio.ensure_future(demo.proxy.wait())
    await asyncio.wait((stopped, died), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not died.done():
        died.cancel()
        demo.out("\nstopping...")
        return 0
    demo.out(f"\nSwitchback exited with status {demo.proxy.returncode}:\n{log_tail(demo.log)}")
    return 1


async def run(args: argparse.Namespace) -> int:
    if not CONFIG.is_file():
        raise DemoError(
            f"{CONFIG} not found: the demo runs from a source checkout (git clone, then make demo)"
        )
    config = load_config(CONFIG, env={**os.environ, "SWITCHBACK_ADMIN_TOKEN": TOKEN})
    check_ports(config)
    runners: list[web.AppRunner] = []
    with tempfile.TemporaryDirectory(prefix="switchback-demo-") as tmp:
        work = Path(tmp)
        try:
            apps = {}
            for name, release in config.releases.items():
                runner, apps[name] = await start_release(name, release.url)
                runners.append(runner)
            print(f"blue and green up; starting Switchback ({CONFIG.relative_to(REPO)})")
            proxy = await start_proxy(work)
            try:
                async with aiohttp.ClientSession() as session:
                    demo = Demo(config, work, session, proxy, apps["green"], args.fail_rate)
                    await wait_ready(demo)
                    for phase in PHASES:
                        await phase(demo)
                    print(await try_it(demo) if not args.no_wait else "\n(--no-wait: stopping)")
                    return 0 if args.no_wait else await wait_for_ctrl_c(demo)
            finally:
                await stop_proxy(proxy)
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="switchback demo",
        description="Sample blue/green releases, Switchback in front, and traffic to watch.",
    )
    parser.add_argument("--no-wait", action="store_true", help="exit after the phases")
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="make green fail this share (0-1) of requests during the rollout, to see it "
        "rolled back automatically",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error(f"--fail-rate: {args.fail_rate} is not between 0 and 1")
    try:
        return asyncio.run(run(args))
    except (DemoError, ConfigError, OSError) as exc:  # OSError: a port taken since the check
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
