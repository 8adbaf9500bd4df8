"""The ledger on bad disks and bad files: a corrupt, truncated or foreign file is set aside for
a new one (at opening, at a flush, at a read); a file out of reach keeps the counts in memory,
bounded, until it is back; every file is mode 0600."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from proxy.deprecation import ledger_memory
from proxy.deprecation.ledger import Ledger, LedgerHooks
from proxy.deprecation.ledger_db import schema_problem
from proxy.errors import LedgerError

DAY = 86_400.0
NOW = time.time()
KEEP = 36_500


@dataclass
class Events:
    failures: int = 0
    resets: int = 0
    dropped: list[int] = field(default_factory=list)

    def hooks(self) -> LedgerHooks:
        def failed() -> None:
            self.failures += 1

        def reset() -> None:
            self.resets += 1

        return LedgerHooks(write_failed=failed, reset=reset, dropped=self.dropped.append)


def stored(path: Path) -> list[tuple[str, str, int]]:
    """(element, client, count) rows, as another process reads the file."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT element, client, count FROM usage ORDER BY 1, 2").fetchall()


def aside(path: Path) -> list[Path]:
    """The ledger files set aside next to ``path`` (without their -wal and -shm files)."""
    found = path.parent.glob(path.name + ".corrupt-*")
    return sorted(p for p in found if not p.name.endswith(("-wal", "-shm", "-journal")))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


async def filled(path: Path, clients: int = 3000) -> None:
    """A real ledger with enough rows to span many pages, closed and checkpointed."""
    ledger = Ledger(str(path), KEEP)
    for i in range(clients):
        ledger.record("user-role", "exposure", f"client-{i:05d}", NOW)
    await ledger.close()


@pytest.mark.parametrize("wal", [False, True])
async def test_a_file_that_is_not_a_database_is_set_aside_at_opening(path: Path, wal: bool) -> None:
    path.parent.mkdir()
    path.write_bytes(b"these are not the bytes of a database" * 100)
    if wal:
        Path(f"{path}-wal").write_bytes(b"nor these")
    events = Events()
    ledger = Ledger(str(path), KEEP, now=NOW, hooks=events.hooks())
    assert events.resets == 1 and events.failures == 0
    (moved,) = aside(path)
    assert moved.read_bytes() == b"these are not the bytes of a database" * 100
    if wal:
        assert Path(f"{moved}-wal").read_bytes() == b"nor these"
    ledger.register_elements(["user-role"], NOW)
    ledger.record("user-role", "use", "web", NOW)
    await ledger.close()
    assert stored(path) == [("user-role", "web", 1)]  # counting goes on in the new file


async def test_a_truncated_file_is_set_aside_and_nothing_recorded_is_lost(path: Path) -> None:
    await filled(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy cut short, a disk that lost the end
    events = Events()
    ledger = Ledger(str(path), KEEP, hooks=events.hooks())
    for i in range(0, 3000, 7):  # touches all over the table's pages
        ledger.record("user-role", "exposure", f"client-{i:05d}", NOW)
    for _ in range(3):  # found at opening, or at the first flush (then replaced at the next)
        if events.resets:
            break
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):
            await ledger.flush()
    assert events.resets == 1
    await ledger.close()
    assert len(aside(path)) == 1
    assert sum(count for _, _, count in stored(path)) == len(range(0, 3000, 7))


async def test_corruption_found_at_a_later_flush_replaces_the_file(path: Path) -> None:
    await filled(path)
    events = Events()
    ledger = Ledger(str(path), KEEP, hooks=events.hooks())
    opened_since = ledger.observing_since()
    ledger.register_elements(["user-role"], NOW - 40 * DAY)
    await ledger.flush()
    # Another writer appends to the file (its pages now come from the WAL), then the disk
    # damages every page after the first: the ledger's cached pages no longer count.
    with closing(sqlite3.connect(path)) as other:
        with other:
            other.execute("INSERT INTO meta (key, value) VALUES ('note', 'x')")
        size = path.stat().st_size
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(size - 4096))
    ledger.record("user-role", "exposure", "client-00001", NOW)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        await ledger.flush()
    assert events.resets == 0 and events.failures == 1
    # What the old file had watched is gone with it: the report must not count it.
    assert ledger.observed_since(["user-role"])["user-role"] > opened_since
    await ledger.flush()
    assert events.resets == 1
    assert ledger.observing_since() > opened_since
    await ledger.close()
    assert stored(path) == [("user-role", "client-00001", 1)]
    assert len(aside(path)) == 1


async def test_corruption_found_by_a_read_raises_and_the_next_flush_replaces_the_file(
    path: Path,
) -> None:
    await filled(path)
    events = Events()
    ledger = Ledger(str(path), KEEP, hooks=events.hooks())
    with closing(sqlite3.connect(path)) as other:
        with other:
            other.execute("INSERT INTO meta (key, value) VALUES ('note', 'x')")
        with open(path, "r+b") as f:
            f.seek(4096)
            f.write(b"\xff" * (path.stat().st_size - 4096))
    ledger.record("user-role", "use", "web", NOW)
    with pytest.raises(LedgerError, match=f"ledger {path} cannot be read now: .*malformed"):
        ledger.usage_since(NOW - DAY)  # never a partial answer
    await ledger.flush()
    assert events.resets == 1
    assert [(r.client, r.count) for r in ledger.usage_since(NOW - DAY)] == [("web", 1)]
    await ledger.close()


async def test_tables_of_another_shape_are_set_aside(path: Path) -> None:
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE usage (element TEXT, hits INTEGER)")
        conn.commit()
    events = Events()
    ledger = Ledger(str(path), KEEP, hooks=events.hooks())
    assert events.resets == 1
    ledger.record("user-role", "use", "web", NOW)
    await ledger.close()
    assert stored(path) == [("user-role", "web", 1)]
    with closing(sqlite3.connect(aside(path)[0])) as conn:
        assert conn.execute("SELECT sql FROM sqlite_master").fetchone()[0].endswith("hits INTEGER)")


def test_schema_problem_says_what_does_not_fit() -> None:
    good = {
        "usage": [
            ("element", 1, True),
            ("kind", 2, True),
            ("client", 3, True),
            ("day", 4, True),
            ("count", 0, True),
            ("first_seen", 0, True),
            ("last_seen", 0, True),
        ],
        "meta": [("key", 1, False), ("value", 0, False)],
        "elements": [("id", 1, False), ("first_configured", 0, True)],
        "watched": [("element", 1, True), ("day", 2, True)],
    }
    assert schema_problem(good) is None
    assert schema_problem({**good, "meta": [*good["meta"], ("note", 0, False)]}) is None
    assert schema_problem({**good, "meta": [("key", 1, False)]}) == "table meta has no column value"
    assert (
        schema_problem({**good, "watched": [("element", 1, True), ("day", 0, True)]})
        == "table watched does not have the primary key (element, day)"
    )
    assert (
        schema_problem({**good, "elements": [*good["elements"], ("owner", 0, True)]})
        == "table elements has a column this version cannot fill: owner"
    )


async def test_a_file_out_of_reach_counts_in_memory_until_it_is_back(path: Path) -> None:
    path.parent.parent.mkdir(exist_ok=True)
    path.parent.write_text("a file where the state directory should be")  # even root fails
    events = Events()
    ledger = Ledger(str(path), KEEP, hooks=events.hooks())  # does not raise
    assert events.failures == 1 and ledger.error is not None
    ledger.register_elements(["user-role"], NOW)
    ledger.record("user-role", "use", "web", NOW)
    assert [(r.client, r.count) for r in ledger.usage_since(NOW - DAY)] == [("web", 1)]
    with pytest.raises(OSError):
        await ledger.flush()
    assert events.failures == 2
    assert ledger.health()["ok"] is False and ledger.health()["unflushed"] == 1

    path.parent.unlink()  # the disk is back
    ledger.record("user-role", "use", "web", NOW + 1)
    await ledger.flush()
    assert ledger.health() == {
        "file": str(path),
        "ok": True,
        "error": None,
        "unflushed": 0,
        "dropped": 0,
    }
    await ledger.close()
    assert stored(path) == [("user-role", "web", 2)]
    assert events.resets == 0


async def test_memory_is_bounded_and_a_day_that_lost_touches_is_not_watched(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_memory, "MAX_PENDING", 10)
    events = Events()
    ledger = Ledger(str(path), KEEP, now=NOW - 60 * DAY, hooks=events.hooks())
    ledger.register_elements(["user-role", "page-param"], NOW - 60 * DAY)
    for k in range(59, -1, -1):
        await ledger.flush(now=NOW - k * DAY)  # watched every day for two months, today too
    assert ledger.watched_days("user-role", NOW, NOW) == 1
    ledger.record("page-param", "use", "web", NOW)
    for i in range(15):
        ledger.record("user-role", "exposure", f"client-{i}", NOW)
    ledger.record("user-role", "exposure", "client-0", NOW)  # a key already kept: counted
    assert events.dropped == [1] * 6
    assert ledger.health()["unflushed"] == 10
    # That day cannot count as watched for the element that lost touches, nor after a restart.
    assert ledger.watched_days("user-role", NOW, NOW) == 0
    assert ledger.watched_days("page-param", NOW, NOW) == 1
    await ledger.flush(now=NOW)
    assert ledger.watched_days("user-role", NOW, NOW) == 0
    await ledger.close()
    reopened = Ledger(str(path), KEEP)
    assert reopened.watched_days("user-role", NOW, NOW) == 0
    assert reopened.watched_days("user-role", NOW - 30 * DAY, NOW) == 30
    assert reopened.watched_days("page-param", NOW, NOW) == 1
    await reopened.close()


async def test_the_bound_counts_the_batch_being_written(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_memory, "MAX_PENDING", 10)
    events = Events()
    ledger = Ledger(str(path), KEEP, hooks=events.hooks())
    for i in range(8):
        ledger.record("user-role", "use", f"client-{i}", NOW)
    with closing(sqlite3.connect(path)) as other:
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the file: the write waits
        flushing = asyncio.create_task(ledger.flush())
        await asyncio.sleep(0)  # the batch of 8 is in flight
        for i in range(8, 13):
            ledger.record("user-role", "use", f"client-{i}", NOW)
        assert ledger.health()["unflushed"] == 10 and events.dropped == [1, 1, 1]
        other.rollback()
    await flushing
    await ledger.close()
    assert len(stored(path)) == 10


@pytest.mark.parametrize("umask", [0o000, 0o022])
async def test_the_ledger_and_its_wal_and_shm_files_are_0600(path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        ledger = Ledger(str(path), KEEP)
        ledger.record("user-role", "use", "web", NOW)
        await ledger.flush()
        modes = {
            p.name: stat.S_IMODE(p.stat().st_mode)
            for p in path.parent.iterdir()
            if p.name.startswith("ledger.sqlite3")
        }
        await ledger.close()
    finally:
        os.umask(old)
    assert modes == {
        "ledger.sqlite3": 0o600,
        "ledger.sqlite3-wal": 0o600,
        "ledger.sqlite3-shm": 0o600,
    }
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 & ~umask


async def test_an_older_more_open_ledger_is_made_0600(path: Path) -> None:
    path.parent.mkdir()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (a)")
    path.chmod(0o644)
    ledger = Ledger(str(path), KEEP)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await ledger.close()
