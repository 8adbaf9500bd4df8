"""A soak under faults: Switchback (``python -m proxy run``) between 32 concurrent clients and
two releases that reset, stall, truncate, send garbage, send bytes after a response and answer
slowly, while an operator sets weights, rolls out, rolls back, promotes and reloads the config.

It passes when no client ever gets another request's answer; every request gets a complete
answer or a clean error (Switchback's JSON 502/503/504, or the connection ended after part of
the answer) and no client waits longer than Switchback's timeouts plus ``MARGIN``; descriptors
and memory come back to where they were after the warm-up; the split changes are honoured; and
the process still serves. Faults are random (seeded), the checks are not: each is an invariant
that holds whichever faults a run draws.

Environment: ``SOAK_SECONDS`` (load time, default 10; ``make soak`` runs 60), ``SOAK_CLIENTS``
(default 32), ``SOAK_SEED`` (default 1), ``SOAK_FAULTS`` (``off``, or ``kind[:rate],...`` to
inject only those kinds, release faults at 0.1 each by default, misbehaving clients by name;
unset: the mixed rates below, doubled on green, and both misbehaving clients), ``SOAK_RESULTS``
(a path: the figures are also written there as JSON).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.conftest import Releases, write_switchback_config
from tests.integration.helpers_rollout import Process, Processes, wait_until
from tests.soak import procstat, report, scenario
from tests.soak.faulty_release import FaultyRelease
from tests.soak.load import RUDE_KINDS, Clients, Tally, one_get
from tests.soak.plans import FAULT_KINDS

RESPONSE_TIMEOUT = 2.0  # upstream.response_timeout: a stalled head is answered 504 after this
READ_TIMEOUT = 2.0  # upstream.read_timeout: a release silent mid-body is cut off after this
KEEPALIVE = 5.0  # server.keepalive_timeout: an idle keep-alive connection is closed
HEAD_TIMEOUT = 5.0  # server.head_timeout: a head that never completes is answered 408
BODY_TIMEOUT = 3.0  # server.body_timeout: a request body that stops is answered 408
MARGIN = 3.0  # for a busy machine: scheduling, a 1 MiB body, the sweep's 0.1 s resolution
IDLE_BOUND = max(RESPONSE_TIMEOUT, READ_TIMEOUT) + MARGIN  # the longest wait for the next byte
RUDE_BOUND = max(KEEPALIVE, HEAD_TIMEOUT, BODY_TIMEOUT) + MARGIN  # ... for a client that stops
WARMUP = 2.0
SETTLE = 15.0  # the longest to wait for connections to close and descriptors to come back
# Descriptors Switchback opens and closes on its own schedule (the state file written on an
# admin change, a reload's config read) may be open at the instant of a reading.
FD_TOLERANCE = 2
# Buffers of up to 32 bodies of 1 MiB in flight, and the allocator keeping some of what it
# was given, are not a leak; a per-request leak over thousands of requests exceeds this.
RSS_BOUND = 20 << 20

MIXED = {
    "slow": 0.04,
    "stall_head": 0.01,
    "stall_body": 0.005,
    "reset_before_head": 0.01,
    "reset_mid_head": 0.01,
    "reset_mid_body": 0.01,
    "truncate": 0.01,
    "garbage": 0.01,
    "trailing": 0.01,
}
CONFIG: dict[str, Any] = {
    "upstream": {
        "connect_timeout": 1.0,
        "response_timeout": RESPONSE_TIMEOUT,
        "read_timeout": READ_TIMEOUT,
    },
    "server": {
        "drain_timeout": 2.0,
        "keepalive_timeout": KEEPALIVE,
        "head_timeout": HEAD_TIMEOUT,
        "body_timeout": BODY_TIMEOUT,
    },
    "telemetry": {"flush_seconds": 1.0},
    "deprecations": [{"id": "soak-legacy", "field": "legacy", "deprecated": "2025-01-01"}],
}


def faults_wanted() -> tuple[dict[str, dict[str, float]], tuple[str, ...]]:
    """From ``SOAK_FAULTS``: the fault rates of each release, and the misbehaving clients."""
    spec = os.environ.get("SOAK_FAULTS", "").strip()
    if not spec:
        return {"blue": MIXED, "green": {k: 2 * v for k, v in MIXED.items()}}, RUDE_KINDS
    rates: dict[str, float] = {}
    rude: list[str] = []
    for item in spec.split(",") if spec != "off" else []:
        kind, _, rate = item.strip().partition(":")
        if kind in RUDE_KINDS:
            rude.append(kind)
            continue
        assert kind in FAULT_KINDS, f"SOAK_FAULTS: {kind!r} is not in {FAULT_KINDS + RUDE_KINDS}"
        rates[kind] = float(rate or 0.1)
    return {"blue": rates, "green": rates}, tuple(rude)


async def settle(pid: int, releases: list[FaultyRelease]) -> bool:
    """Wait until Switchback holds no TCP connection and the releases none either."""
    try:
        await wait_until(
            lambda: procstat.connections(pid) == 0 and not any(r.open for r in releases),
            SETTLE,
            "connections to close",
            interval=0.1,
        )
    except AssertionError:
        return False
    return True


def connections_left(pid: int, ports: dict[int, str]) -> dict[str, int]:
    """Switchback's TCP connections by state and by what they connect: a client (to its
    listener, or its admin listener) or a release."""
    left: Counter[str] = Counter()
    for state, local, remote in procstat.sockets(pid):
        left[f"{state} {ports.get(local) or ports.get(remote, 'other')}"] += 1
    return dict(left)


async def fds_back(pid: int, start: int) -> int:
    """The descriptor count once it is back within tolerance, or when ``SETTLE`` runs out."""
    try:
        await wait_until(lambda: procstat.fds(pid) <= start + FD_TOLERANCE, SETTLE, "fds")
    except AssertionError:
        pass
    return procstat.fds(pid)


async def still_serving(proc: Process) -> dict[str, Any]:
    """A normal request through Switchback, its /healthz, and whether it still runs."""
    final: dict[str, Any] = {}
    try:
        final["get"] = (await one_get(proc.inner.port, "final-000001", IDLE_BOUND)).kind
    except OSError as exc:
        final["get"] = repr(exc)
    try:
        async with aiohttp.ClientSession() as s, s.get(proc.admin + "/healthz") as r:
            final["healthz"] = r.status
    except aiohttp.ClientError as exc:
        final["healthz"] = repr(exc)
    final["running"] = proc.inner.proc.returncode is None
    return final


async def test_soak_under_faults(tmp_path: Path) -> None:
    began = time.monotonic()
    seconds = float(os.environ.get("SOAK_SECONDS", "10"))
    clients = int(os.environ.get("SOAK_CLIENTS", "32"))
    seed = int(os.environ.get("SOAK_SEED", "1"))
    rates, rude = faults_wanted()
    releases = [FaultyRelease(name, seed, rates[name]) for name in ("blue", "green")]
    for release in releases:
        await release.start()
    processes = Processes()
    tally = Tally()
    plan = scenario.actions()
    m: dict[str, Any] = {"fd_tolerance": FD_TOLERANCE, "rss_bound": RSS_BOUND}
    try:
        path = write_switchback_config(tmp_path / "switchback.yaml", Releases(*releases), CONFIG)
        proc = await processes.start(path)
        pid = proc.inner.pid
        load = Clients(proc.inner.port, seed, IDLE_BOUND, RUDE_BOUND, tally, phase="w")
        await load.run(clients, WARMUP)
        ports = {proc.inner.port: "client", proc.inner.admin_port: "admin client"}
        ports.update({r.port: r.name for r in releases})
        m["settled_before"] = await settle(pid, releases)
        m["connections_left_before"] = connections_left(pid, ports)
        m.update(fds_before=procstat.fds(pid), rss_before=procstat.rss(pid))
        m["fd_kinds_before"] = procstat.fd_kinds(pid)
        load.phase = "r"
        await asyncio.gather(
            load.run(clients, seconds, rude), scenario.run(proc.admin, path, seconds, plan)
        )
        m["settled_after"] = await settle(pid, releases)
        m["connections_left_after"] = connections_left(pid, ports)
        settled = m["settled_after"]
        m["fds_after"] = await fds_back(pid, m["fds_before"]) if settled else procstat.fds(pid)
        m.update(rss_after=procstat.rss(pid), rss_peak=procstat.peak_rss(pid))
        m["fd_kinds_after"] = procstat.fd_kinds(pid)
        for release in releases:
            release.injecting = False  # a normal request, to see that it is still served
        final = await still_serving(proc)
        log = proc.log
    finally:
        await processes.close()
        for release in releases:
            await release.close()

    fig = figures(tally, releases, plan, m, final, log)
    fig.update(load_seconds=seconds, clients=clients, seed=seed)
    fig["duration_seconds"] = time.monotonic() - began
    print("\n" + report.render(fig))
    if os.environ.get("SOAK_RESULTS"):
        report.save(fig, os.environ["SOAK_RESULTS"])
    failed = [f"{name}: {c['detail']}" for name, c in fig["checks"].items() if not c["ok"]]
    assert not failed, "soak checks failed:\n" + "\n".join(failed)


def figures(
    tally: Tally,
    releases: list[FaultyRelease],
    plan: list[scenario.Action],
    m: dict[str, Any],
    final: dict[str, Any],
    log: str,
) -> dict[str, Any]:
    return {
        "requests": {
            "total": len(tally.records),
            "warm_up": sum(r.sent.request_id.startswith("w") for r in tally.records),
            "by_shape": dict(tally.shapes()),
        },
        "outcomes": dict(tally.outcomes().most_common()),
        "rude": dict(tally.rude),
        "releases": report.faults(releases),
        "process": m,
        "admin": [{"name": a.name, "status": a.status, "answer": a.answer} for a in plan],
        "final": final,
        "checks": checks(tally, releases, plan, m, final, log),
        "failure_causes": report.failure_causes(tally, releases),
        "failure_examples": report.failure_examples(tally, releases),
        "rude_failures": tally.rude_failures,
    }


def checks(
    tally: Tally,
    releases: list[FaultyRelease],
    plan: list[scenario.Action],
    m: dict[str, Any],
    final: dict[str, Any],
    log: str,
) -> dict[str, dict[str, Any]]:
    failures = Counter(r.verdict.kind for r in tally.failures())
    foreign = failures.pop("foreign_response", 0)
    hangs = failures["hang"]
    rates = {k for r in releases for k, v in r.rates.items() if v}
    injected = {k for r in releases for k in r.faults}
    wrong_release = [
        f"{r.sent.request_id} answered by {r.verdict.release} ({r.verdict.kind})"
        for only, start, end in scenario.pinned_windows(plan)
        for r in tally.records
        if start <= r.sent.sent_at and r.ended < end and r.verdict.release not in (None, only)
    ]
    results = {
        "no client got another request's answer": (foreign == 0, f"{foreign} foreign answers"),
        "every request got a complete answer or a clean error": (
            not failures, dict(failures)),
        "no client waited past the timeouts": (
            hangs == 0 and not tally.rude_failures,
            f"{hangs} answers stalled past {IDLE_BOUND:g} s; {tally.rude_failures[:5]}"),
        "every fault kind was injected": (
            injected >= rates, f"none of {sorted(rates - injected)}"),
        "the releases could read every request": (
            not any(r.malformed for r in releases), [r.malformed[:3] for r in releases]),
        "every admin action did what it says": (
            all(a.ok for a in plan), [(a.name, a.status, a.answer) for a in plan if not a.ok]),
        "the split in force was honoured": (not wrong_release, wrong_release[:5]),
        "file descriptors came back": (
            m["settled_before"] and m["settled_after"]
            and m["fds_after"] <= m["fds_before"] + FD_TOLERANCE,
            f"{m['fds_before']} -> {m['fds_after']}, connections left before"
            f" {m['connections_left_before']}, after {m['connections_left_after']}"),
        "resident memory came back within the bound": (
            m["rss_after"] <= m["rss_before"] + RSS_BOUND,
            f"{m['rss_before'] >> 20} -> {m['rss_after'] >> 20} MiB"),
        "the process still serves": (
            final == {"get": "ok", "healthz": 200, "running": True}, final),
        "no traceback in Switchback's log": ("Traceback" not in log, log[-2000:]),
    }  # fmt: skip
    return {name: {"ok": bool(good), "detail": detail} for name, (good, detail) in results.items()}
