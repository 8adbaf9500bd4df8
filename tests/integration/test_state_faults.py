"""The state directory going bad under a running Switchback, with real blue and green releases
and real clients: a read-only directory, a full disk, a corrupt ledger, a damaged traffic.json.
In each, what the clients get (every request answered; a rollback in force on the very next
request), what the admin API and the metrics say, and that the state reaches the disk once
the disk takes it again.

Making writes fail for real: ``chmod 0500`` does, except for root (or a process with
CAP_DAC_OVERRIDE), where writes go through; the tests probe for that and then move the
directory away and put a file in its place, which fails every save for anyone. A full disk is
the kernel's file-size limit (RLIMIT_FSIZE) set on the Switchback process from outside: every
write to a file then fails with EFBIG, as writes to a full disk fail with ENOSPC.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import signal
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import (
    Releases,
    StartProxy,
    sample,
    write_switchback_config,
)
from tests.integration.helpers_rollout import (
    Load,
    Processes,
    failed,
    poll,
    processes_fixture,  # noqa: F401 - the processes fixture
    status_of,
)

USER_ROLE = {
    "deprecations": [
        {
            "id": "user-role",
            "field": "user.role",
            "on": "GET /users/{id}",
            "deprecated": "2026-06-01",
        }
    ],
    "telemetry": {"flush_seconds": 0.2},
}
HALF = {"traffic": {"weights": {"blue": 50, "green": 50}}}


def can_create_in(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("x")
    except OSError:
        return False
    probe.unlink()
    return True


@contextmanager
def unwritable(state_dir: Path) -> Iterator[str]:
    """Saves into ``state_dir`` fail inside the block (yields how); it is back after."""
    state_dir.chmod(0o500)
    if not can_create_in(state_dir):
        try:
            yield "chmod 0500"
        finally:
            state_dir.chmod(0o700)
        return
    state_dir.chmod(0o700)  # root: a mode does not stop writes, a file in the way does
    away = state_dir.with_name(state_dir.name + ".away")
    state_dir.rename(away)
    state_dir.write_text("a file where the state directory was")
    try:
        yield "directory replaced by a file"
    finally:
        state_dir.unlink()
        away.rename(state_dir)


@contextmanager
def full_disk(pid: int) -> Iterator[None]:
    """Every write of process ``pid`` to a file fails (EFBIG) inside the block."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))


def saved(state_dir: Path) -> dict[str, Any]:
    data = json.loads((state_dir / "traffic.json").read_text())
    assert isinstance(data, dict)
    return data


def ledger_rows(path: Path) -> dict[str, int]:
    """client -> stored count of user-role touches, as another process reads the file (read
    only, never creating it); {} while there is no such file or table yet (a new ledger being
    made), so that a poll waits for it."""
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT client, sum(count) FROM usage GROUP BY client").fetchall()
    except sqlite3.Error:
        return {}
    return dict(rows)


async def ready(admin: str) -> int:
    async with aiohttp.ClientSession() as s, s.get(admin + "/readyz") as r:
        return r.status


def served_after(load: Load, t: float) -> set[tuple[int, str | None]]:
    return {(r.status, r.served_by) for r in load.since(t)}


async def test_a_read_only_state_directory_keeps_traffic_and_the_rollback(
    switchback: StartProxy, tmp_path: Path
) -> None:
    proxy = await switchback(HALF)
    state_dir = tmp_path / "state"
    loop = asyncio.get_running_loop()
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(100)
        assert {r.served_by for r in load.results} == {"blue", "green"}
        with unwritable(state_dir) as how:
            code, body = await proxy.admin_call("POST", "/rollback", {"reason": "disk test"})
            answered = loop.time()
            assert code == 200, (how, body)
            assert (body["persisted"], body["rollout"]["state"]) == (False, "rolled_back")
            assert body["persist_error"], how
            assert body["weights"] == {"blue": 100.0, "green": 0.0}
            await load.wait_for_requests(100)
            assert served_after(load, answered) == {(200, "blue")}  # in force at once
            status = await status_of(proxy)
            assert (status["persisted"], status["persist_error"]) == (False, body["persist_error"])
            samples = await proxy.metrics()
            assert sample(samples, "switchback_state_write_failures_total") >= 1
            assert sample(samples, "switchback_state_persisted") == 0
            assert await ready(proxy.admin) == 200  # traffic is what matters
        status = await poll(
            lambda: status_of(proxy), lambda s: s["persisted"], 10, "the retried save"
        )
        await load.wait_for_requests(50)
    assert failed(load.results) == []
    assert status["persist_error"] is None
    on_disk = saved(state_dir)
    assert on_disk["weights"] == {"blue": 100.0, "green": 0.0}
    assert (on_disk["rollout"]["state"], on_disk["out_of_service"]) == ("rolled_back", "green")
    assert sample(await proxy.metrics(), "switchback_state_persisted") == 1


async def test_a_full_disk_keeps_traffic_and_counting_and_everything_reaches_it_later(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = write_switchback_config(tmp_path / "switchback.yaml", releases, {**USER_ROLE, **HALF})
    ledger = tmp_path / "state" / "ledger.sqlite3"
    first = await processes.start(path)
    async with Load(first.url, clients=10, path="/users/1", prefix="before") as load:
        await load.wait_for_requests(50)
    await poll(lambda: asyncio.to_thread(ledger_rows, ledger), lambda r: len(r) == 10, 10, "flush")
    loop = asyncio.get_running_loop()
    with full_disk(first.inner.pid):
        async with Load(first.url, clients=10, path="/users/1", prefix="during") as load:
            await load.wait_for_requests(50)
            code, body = await first.admin_call("POST", "/rollback", {"reason": "disk full"})
            answered = loop.time()
            assert (code, body["persisted"]) == (200, False), body
            assert "File too large" in body["persist_error"]
            await load.wait_for_requests(50)
            assert served_after(load, answered) == {(200, "blue")}
            samples = await poll(
                first.metrics,
                lambda m: sample(m, "switchback_ledger_write_failures_total") >= 1,
                10,
                "a failed ledger flush",
            )
            assert sample(samples, "switchback_state_write_failures_total") >= 1
            status = await status_of(first)
            assert status["persisted"] is False and status["ledger"]["ok"] is False
            assert status["ledger"]["error"]  # SQLite's words: "disk I/O error"
            assert await ready(first.admin) == 200
            # The report counts what waits in memory.
            code, report = await first.admin_call("GET", "/deprecations")
            clients = {c["client"] for c in report["elements"][0]["clients"]}
            assert {f"during-{i}" for i in range(10)} <= clients
        assert failed(load.results) == []
    await poll(
        lambda: status_of(first),
        lambda s: s["persisted"] and s["ledger"]["ok"] and s["ledger"]["unflushed"] == 0,
        10,
        "the state and the ledger written once the disk takes them",
    )
    assert await first.kill() == -signal.SIGKILL  # nothing more is written on the way out
    assert saved(tmp_path / "state")["rollout"]["state"] == "rolled_back"
    stored = ledger_rows(ledger)
    assert {f"during-{i}" for i in range(10)} <= set(stored)
    assert "Traceback" not in first.log
    second = await processes.start(path)
    status = await status_of(second)
    assert (status["rollout"]["state"], status["persisted"]) == ("rolled_back", True)


async def test_a_corrupt_ledger_is_set_aside_and_counting_goes_on(
    switchback: StartProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    ledger = state_dir / "ledger.sqlite3"
    ledger.write_bytes(b"what a disk failure left " * 100)
    Path(f"{ledger}-wal").write_bytes(b"and its log")
    with caplog.at_level(logging.WARNING, logger="switchback.ledger"):
        proxy = await switchback(USER_ROLE)
    found = state_dir.glob("ledger.sqlite3.corrupt-*")
    (moved,) = [p for p in found if not p.name.endswith(("-wal", "-shm"))]
    assert moved.read_bytes() == b"what a disk failure left " * 100
    assert Path(f"{moved}-wal").read_bytes() == b"and its log"
    (warning,) = [r.getMessage() for r in caplog.records if "corrupt" in r.getMessage()]
    assert str(ledger) in warning and str(moved) in warning
    samples = await proxy.metrics()
    assert sample(samples, "switchback_ledger_resets_total") == 1
    assert sample(samples, "switchback_ledger_write_failures_total") == 0
    async with Load(proxy.url, clients=5, path="/users/1", prefix="app") as load:
        await load.wait_for_requests(25)
    assert failed(load.results) == []
    expected = {f"app-{i}" for i in range(5)}
    await poll(
        lambda: asyncio.to_thread(ledger_rows, ledger),
        lambda rows: set(rows) == expected,
        10,
        "the touches in the new ledger",
    )
    code, report = await proxy.admin_call("GET", "/deprecations")
    (element,) = report["elements"]
    assert {c["client"] for c in element["clients"]} == expected
    assert element["observed_days"] < 1  # the new ledger's watch starts now


async def test_a_ledger_damaged_while_running_answers_503_then_is_replaced(
    switchback: StartProxy, tmp_path: Path
) -> None:
    """Damage the running ledger's file (another writer, then a disk returning garbage): the
    report refuses rather than answer from part of the data, traffic goes on, and the next
    flush sets the file aside and counts on in a new one."""
    proxy = await switchback(USER_ROLE)
    ledger = tmp_path / "state" / "ledger.sqlite3"
    async with Load(proxy.url, clients=5, path="/users/1", prefix="old") as load:
        await load.wait_for_requests(25)
    await poll(lambda: asyncio.to_thread(ledger_rows, ledger), lambda r: len(r) == 5, 10, "flush")
    with closing(sqlite3.connect(ledger)) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself
        with other:  # a change: the ledger's cached pages no longer count
            other.execute("INSERT INTO meta (key, value) VALUES ('note', 'x')")
        with open(ledger, "r+b") as f:
            f.seek(4096)
            f.write(b"\xff" * (ledger.stat().st_size - 4096))
    code, body = await proxy.admin_call("GET", "/deprecations")
    assert code == 503, body
    assert body["error"].startswith(f"ledger {ledger} cannot be read now: ")
    async with Load(proxy.url, clients=3, path="/users/1", prefix="new") as load:
        await load.wait_for_requests(15)
    assert failed(load.results) == []
    await poll(
        proxy.metrics,
        lambda m: sample(m, "switchback_ledger_resets_total") == 1,
        10,
        "the damaged ledger set aside",
    )
    rows = await poll(
        lambda: asyncio.to_thread(ledger_rows, ledger),
        lambda r: set(r) == {"new-0", "new-1", "new-2"},
        10,
        "the new touches in the new ledger",
    )
    assert all(count > 0 for count in rows.values())
    code, report = await proxy.admin_call("GET", "/deprecations")
    assert code == 200
    assert {c["client"] for c in report["elements"][0]["clients"]} == set(rows)


async def test_a_traffic_json_damaged_while_running_is_written_whole_at_the_next_change(
    switchback: StartProxy, tmp_path: Path
) -> None:
    """Switchback reads the file only at start: it keeps serving what is in force, and its
    next save replaces the damaged file with a whole one."""
    proxy = await switchback(HALF)
    state = tmp_path / "state" / "traffic.json"
    state.write_bytes(state.read_bytes()[:40])
    async with Load(proxy.url, clients=10) as load:
        await load.wait_for_requests(50)
        code, body = await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 20}})
        assert (code, body["persisted"]) == (200, True)
        await load.wait_for_requests(20)
    assert failed(load.results) == [] and {r.served_by for r in load.results} == {"blue", "green"}
    assert saved(tmp_path / "state")["weights"] == {"blue": 80.0, "green": 20.0}


async def test_a_leftover_temporary_file_neither_confuses_nor_stays(
    switchback: StartProxy, tmp_path: Path
) -> None:
    first = await switchback(HALF, name="first.yaml")
    code, _ = await first.admin_call("POST", "/rollback")
    assert code == 200
    await first.runtime.stop()
    leftover = tmp_path / "state" / ".traffic.json.x7k2q9.tmp"
    leftover.write_bytes(b'{"version": 1, "stable": "green", "weigh')  # a save cut short
    second = await switchback(HALF, name="second.yaml")
    status = await status_of(second)
    assert (status["rollout"]["state"], status["weights"]["green"]) == ("rolled_back", 0.0)
    assert not leftover.exists()


async def test_state_files_are_private_whatever_the_umask(
    switchback: StartProxy, tmp_path: Path
) -> None:
    old = os.umask(0)
    try:
        proxy = await switchback(USER_ROLE)
        async with Load(proxy.url, clients=2, path="/users/1") as load:
            await load.wait_for_requests(10)
        state_dir = tmp_path / "state"
        await poll(
            lambda: asyncio.to_thread(ledger_rows, state_dir / "ledger.sqlite3"),
            lambda rows: len(rows) == 2,
            10,
            "a ledger flush",
        )
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state_dir.iterdir()}
    finally:
        os.umask(old)
    assert modes == {
        "traffic.json": 0o600,
        "ledger.sqlite3": 0o600,
        "ledger.sqlite3-wal": 0o600,
        "ledger.sqlite3-shm": 0o600,
        "journal.sqlite3": 0o600,
        "journal.sqlite3-wal": 0o600,
        "journal.sqlite3-shm": 0o600,
    }
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
