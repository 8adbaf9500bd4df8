import asyncio
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from proxy.deprecation.ledger import Ledger, UsageRow

DAY = 86_400.0
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z
KEEP = 36_500  # retention: flush prunes against the real clock, which is past NOW


def stored(path: Path) -> list[tuple[str, str, str, str, int]]:
    """The usage table as another process would read it."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT element, kind, client, day, count FROM usage ORDER BY 1, 2, 3, 4"
        ).fetchall()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


async def test_record_stays_in_memory_until_flush(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    ledger.record("user-role", "exposure", "mobile-ios", NOW)
    ledger.record("user-role", "exposure", "mobile-ios", NOW + 5)
    ledger.record("page-param", "use", "web", NOW, count=3)
    assert stored(path) == []
    await ledger.flush()
    assert stored(path) == [
        ("page-param", "use", "web", "2025-06-15", 3),
        ("user-role", "exposure", "mobile-ios", "2025-06-15", 2),
    ]
    await ledger.close()


async def test_flushes_add_counts_and_widen_first_and_last_seen(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    ledger.record("user-role", "use", "web", NOW)
    await ledger.flush()
    ledger.record("user-role", "use", "web", NOW - 60, count=2)
    ledger.record("user-role", "use", "web", NOW + 60)
    await ledger.flush()
    await ledger.flush()  # nothing new: must not add anything
    assert stored(path) == [("user-role", "use", "web", "2025-06-15", 4)]
    assert ledger.usage_since(NOW - DAY) == [
        UsageRow(
            element="user-role",
            client="web",
            kinds=("use",),
            count=4,
            first_seen=NOW - 60,
            last_seen=NOW + 60,
        )
    ]
    await ledger.close()


async def test_counts_and_observing_since_survive_reopen(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    since = ledger.observing_since()
    ledger.register_elements(["user-role"], NOW)
    ledger.record("user-role", "exposure", "mobile-ios", NOW, count=7)
    await ledger.close()  # the final flush writes what is pending

    reopened = Ledger(str(path), retention_days=KEEP)
    assert reopened.observing_since() == since
    assert reopened.first_configured("user-role") == NOW
    reopened.register_elements(["user-role", "page-param"], NOW + DAY)
    assert reopened.first_configured("user-role") == NOW  # the first date is kept
    assert reopened.first_configured("page-param") == NOW + DAY
    assert reopened.first_configured("never") is None
    reopened.record("user-role", "exposure", "mobile-ios", NOW + 1)
    await reopened.close()

    again = Ledger(str(path), retention_days=KEEP)
    assert [(r.client, r.count) for r in again.usage_since(NOW - DAY)] == [("mobile-ios", 8)]
    assert again.first_configured("page-param") == NOW + DAY
    await again.close()


async def test_observed_since_is_the_later_of_opening_and_registration(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    opened = ledger.observing_since()
    ledger.register_elements(["old", "new"], opened - 10 * DAY)
    ledger.register_elements(["new", "newer"], opened + DAY)
    assert ledger.observed_since(["old", "new", "newer", "unregistered"]) == {
        "old": opened,
        "new": opened,
        "newer": opened + DAY,
    }
    await ledger.close()


async def test_usage_since_merges_flushed_and_pending_per_element_and_client(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    ledger.record("user-role", "use", "web", NOW - 2 * DAY)
    ledger.record("user-role", "exposure", "web", NOW - 3600)
    await ledger.flush()
    ledger.record("user-role", "use", "web", NOW, count=2)  # pending only
    ledger.record("user-role", "exposure", "batch-job", NOW - 10)  # pending only
    ledger.record("page-param", "use", "web", NOW - 40 * DAY)  # before the window

    rows = sorted(ledger.usage_since(NOW - DAY), key=lambda r: r.client)
    assert rows == [
        UsageRow(
            element="user-role",
            client="batch-job",
            kinds=("exposure",),
            count=1,
            first_seen=NOW - 10,
            last_seen=NOW - 10,
            exposures=1,
        ),
        UsageRow(
            element="user-role",
            client="web",
            kinds=("exposure", "use"),
            count=3,
            first_seen=NOW - 3600,
            last_seen=NOW,
            exposures=1,
        ),
    ]
    await ledger.close()


async def test_usage_recorded_during_a_flush_is_neither_lost_nor_counted_twice(
    path: Path,
) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    for i in range(2000):
        ledger.record("user-role", "use", f"client-{i}", NOW)
    flushing = asyncio.create_task(ledger.flush())
    await asyncio.sleep(0)  # the batch is swapped out and being written
    ledger.record("user-role", "use", "client-0", NOW)
    total = sum(r.count for r in ledger.usage_since(NOW - DAY))
    assert total == 2001
    await flushing
    assert sum(r.count for r in ledger.usage_since(NOW - DAY)) == 2001
    await ledger.close()
    assert sum(row[4] for row in stored(path)) == 2001


async def test_a_failed_flush_keeps_its_batch_for_the_next(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    ledger.record("user-role", "use", "web", NOW)
    with closing(sqlite3.connect(path)) as other:
        other.execute("BEGIN EXCLUSIVE")  # another writer holds the file
        ledger._conn.execute("PRAGMA busy_timeout = 0")
        with pytest.raises(sqlite3.OperationalError):
            await ledger.flush()
        assert [r.count for r in ledger.usage_since(NOW - DAY)] == [1]
        other.rollback()
    ledger.record("user-role", "use", "web", NOW + 1)
    await ledger.flush()
    assert stored(path) == [("user-role", "use", "web", "2025-06-15", 2)]
    await ledger.close()


async def test_a_cancelled_flush_still_writes_its_batch_once(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    for i in range(500):
        ledger.record("user-role", "use", f"client-{i}", NOW)
    flushing = asyncio.create_task(ledger.flush())
    await asyncio.sleep(0)
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    await ledger.close()  # waits for the write the cancelled flush started
    assert sum(row[4] for row in stored(path)) == 500


async def test_rows_past_retention_are_pruned_at_most_hourly(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=30)
    ledger.record("user-role", "use", "old", NOW - 40 * DAY)
    ledger.record("user-role", "use", "recent", NOW - 20 * DAY)
    await ledger.flush(now=NOW - 40 * DAY)  # nothing is past retention yet
    assert [row[2] for row in stored(path)] == ["old", "recent"]

    await ledger.flush(now=NOW)
    assert [row[2] for row in stored(path)] == ["recent"]

    ledger.record("user-role", "use", "old-again", NOW - 40 * DAY)
    await ledger.flush(now=NOW + 600)  # pruned ten minutes ago: not again yet
    assert [row[2] for row in stored(path)] == ["old-again", "recent"]
    await ledger.flush(now=NOW + 3600)
    assert [row[2] for row in stored(path)] == ["recent"]
    await ledger.close()


async def test_run_flushes_in_the_background_until_cancelled(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=KEEP)
    task = asyncio.create_task(ledger.run(0.01))
    ledger.record("user-role", "use", "web", time.time())
    deadline = time.monotonic() + 5
    while not stored(path) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ledger.close()
    assert [row[4] for row in stored(path)] == [1]


def test_schema_is_wal_with_the_documented_tables(path: Path) -> None:
    Ledger(str(path), retention_days=KEEP)._conn.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
        assert {"usage", "meta", "elements"} <= tables


async def test_watched_days_are_kept_and_gaps_stay_gaps(path: Path) -> None:
    ledger = Ledger(str(path), retention_days=4000, now=NOW)
    ledger.register_elements(["user-role"], NOW)
    for k in (1, 2, 5):  # running on these days only
        await ledger.flush(now=NOW + k * DAY)
    await ledger.close()

    reopened = Ledger(str(path), retention_days=4000)
    end = NOW + 6 * DAY
    assert reopened.watched_days("user-role", NOW, end) == 4  # registration day, then 1, 2, 5
    assert reopened.watched_days("user-role", NOW + 2 * DAY, end) == 2
    assert reopened.watched_days("never", NOW) == 0
    window = reopened.observed_in_window(["user-role"], NOW + 5 * DAY, days=5)
    assert NOW + 5 * DAY - window["user-role"] == 4 * DAY  # 4 days watched, not 5 elapsed
    await reopened.close()


# The schema of version 1 (before declared reads), as such a file was written.
V1_SCHEMA = """
CREATE TABLE usage (
    element TEXT NOT NULL, kind TEXT NOT NULL, client TEXT NOT NULL, day TEXT NOT NULL,
    count INTEGER NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (element, kind, client, day)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value);
CREATE TABLE elements (id TEXT PRIMARY KEY, first_configured REAL NOT NULL);
CREATE TABLE watched (element TEXT NOT NULL, day INTEGER NOT NULL, PRIMARY KEY (element, day));
"""


async def test_a_ledger_of_schema_version_1_is_migrated_and_keeps_its_counts(path: Path) -> None:
    path.parent.mkdir(mode=0o700)
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute("INSERT INTO meta VALUES ('observing_since', ?)", (NOW - 50 * DAY,))
        conn.execute(
            "INSERT INTO usage VALUES ('user-role', 'exposure', 'web', '2025-06-15', 7, ?, ?)",
            (NOW - 100, NOW - 50),
        )
        conn.commit()
    path.chmod(0o600)
    ledger = Ledger(str(path), retention_days=KEEP)
    assert ledger.observing_since() == NOW - 50 * DAY
    ledger.record("user-role", "read", "mobile", NOW - 10)
    ledger.record("user-role", "exposure", "mobile", NOW - 10)
    await ledger.flush()
    rows = {r.client: r for r in ledger.usage_since(NOW - DAY)}
    assert (rows["web"].count, rows["web"].exposures, rows["web"].declares) == (7, 7, "no")
    assert (rows["mobile"].count, rows["mobile"].reads, rows["mobile"].declares) == (1, 1, "yes")
    await ledger.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            2,
        )
    reopened = Ledger(str(path), retention_days=KEEP)  # opened again: nothing to migrate
    assert {r.client for r in reopened.usage_since(NOW - DAY)} == {"web", "mobile"}
    await reopened.close()
