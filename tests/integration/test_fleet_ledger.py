"""The fleet ledger on a real PostgreSQL server: two replicas writing side by side, the schema
migrated by two at once, batches applied once, the spool holding rows while the server is
stopped and delivering them when it is back, and pruning by one replica at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy.core.report import DAY
from proxy.deprecation.ledger import LedgerHooks
from proxy.deprecation.ledger_pg import PgLedger, migrate
from proxy.deprecation.ledger_pg_sql import PRUNE_LOCK, SCHEMA_VERSION
from proxy.errors import LedgerError
from tests.pgserver import PgServer, require_bin

IDS = ["user-role", "users-v0"]


@pytest.fixture
async def replicas(pg_url: str, tmp_path: Path) -> AsyncIterator[Any]:
    made: list[PgLedger] = []

    def make(name: str, url: str = pg_url, **kw: Any) -> PgLedger:
        ledger = PgLedger(url, name, str(tmp_path / name), 400, kw.pop("max_rows", 10_000), **kw)
        ledger.register_elements(IDS, time.time())
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        await ledger.close()


def clients(fleet: Any, element: str) -> dict[str, int]:
    return {u.client: u.count for u in fleet.usage if u.element == element}


async def test_a_report_from_either_replica_names_the_clients_of_both(replicas: Any) -> None:
    one, two = replicas("r1"), replicas("r2")
    now = time.time()
    one.record("user-role", "exposure", "ios", now, 3)
    two.record("user-role", "exposure", "android", now, 2)
    two.record("users-v0", "use", "batch-job", now)
    one.record("user-role", "exposure", "android", now)  # the same client through both
    await one.flush()
    await two.flush()
    assert one.error is None and two.error is None

    for ledger in (one, two):
        fleet = await ledger.fleet(IDS, time.time(), 30)
        assert clients(fleet, "user-role") == {"ios": 3, "android": 3}
        assert clients(fleet, "users-v0") == {"batch-job": 1}
        assert sorted(r.replica for r in fleet.replicas) == ["r1", "r2"]
        assert fleet.own_unsent == 0


async def test_first_and_last_seen_are_the_fleets_earliest_and_latest(replicas: Any) -> None:
    one, two = replicas("r1"), replicas("r2")
    now = time.time()
    day = now - now % DAY
    one.record("users-v0", "use", "job", day + 100)
    two.record("users-v0", "use", "job", day + 50)
    two.record("users-v0", "use", "job", day + 300)
    await one.flush()
    await two.flush()
    (row,) = (await one.fleet(IDS, day + 400, 30)).usage
    assert (row.count, row.first_seen, row.last_seen) == (3, day + 50, day + 300)


async def test_rows_not_yet_flushed_count_in_this_replicas_report(replicas: Any) -> None:
    one = replicas("r1")
    one.record("users-v0", "use", "job", time.time())
    fleet = await one.fleet(IDS, time.time(), 30)  # read before any flush
    assert clients(fleet, "users-v0") == {"job": 1}
    await one.flush()
    assert clients(await one.fleet(IDS, time.time(), 30), "users-v0") == {"job": 1}  # once


async def test_two_replicas_migrating_at_once_apply_each_step_once(pg_url: str) -> None:
    conns = [await psycopg.AsyncConnection.connect(pg_url, autocommit=True) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(c) for c in conns))
        assert sorted(applied) == [0, 0, 0, SCHEMA_VERSION]
        cur = await conns[0].execute("SELECT version FROM ledger_schema ORDER BY version")
        assert [v for (v,) in await cur.fetchall()] == list(range(1, SCHEMA_VERSION + 1))
        assert await migrate(conns[1]) == 0  # idempotent
    finally:
        for c in conns:
            await c.close()


async def test_a_batch_committed_but_not_removed_from_the_spool_is_not_applied_twice(
    replicas: Any,
) -> None:
    one = replicas("r1")
    one.record("users-v0", "use", "job", time.time(), 5)
    await one._spool_pending(time.time())
    batch = one.spool.oldest()
    assert batch is not None
    conn = await one._connect()
    await one._send(conn, batch, time.time())  # committed; the process "stops" before delete
    await one.flush()  # the next start delivers the spool again
    assert clients(await one.fleet(IDS, time.time(), 30), "users-v0") == {"job": 5}
    assert one.spool.rows == 0


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own, to stop and start."""
    server = PgServer(require_bin())
    server.start()
    yield server
    server.remove()


async def test_the_spool_holds_rows_while_the_database_is_stopped_and_delivers_them(
    own_server: PgServer, replicas: Any
) -> None:
    url = own_server.create_database()
    gauge: list[int] = []
    failures: list[int] = []
    hooks = LedgerHooks(spool_rows=gauge.append, write_failed=lambda: failures.append(1))
    one = replicas("r1", url, hooks=hooks)
    one.BACKOFF_MIN = one.BACKOFF_MAX = 0.0  # retry at every flush
    now = time.time()
    one.record("users-v0", "use", "job", now, 2)
    await one.flush()
    assert one.error is None and gauge[-1] == 0

    own_server.stop()
    for n in range(3):
        one.record("users-v0", "use", "job", now + n, 10)
        one.record("user-role", "exposure", f"client-{n}", now + n)
        await one.flush()
    assert one.error is not None and failures
    assert one.spool.rows == 6 and gauge[-1] == 6  # three batches of two rows wait
    own_server.start()
    await one.flush()
    assert one.error is None and one.spool.rows == 0 and gauge[-1] == 0
    fleet = await one.fleet(IDS, time.time(), 30)
    assert clients(fleet, "users-v0") == {"job": 32}
    assert clients(fleet, "user-role") == {f"client-{n}": 1 for n in range(3)}


async def test_one_replica_prunes_at_a_time(replicas: Any, pg_url: str) -> None:
    one = replicas("r1")
    now = time.time()
    one.record("users-v0", "use", "old-job", now - 500 * DAY)
    one.record("users-v0", "use", "job", now)
    one._next_prune = now + 10_000  # not at the first flush
    await one.flush(now)
    other = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        await other.execute("SELECT pg_advisory_lock(%s)", (PRUNE_LOCK,))
        one._next_prune = 0.0
        await one.flush(now)
        assert one.pruned == 0  # another replica holds the lock
        await other.execute("SELECT pg_advisory_unlock(%s)", (PRUNE_LOCK,))
        one._next_prune = 0.0
        await one.flush(now)
        assert one.pruned == 1
        cur = await other.execute("SELECT client FROM usage")
        assert [c for (c,) in await cur.fetchall()] == ["job"]
    finally:
        await other.close()


async def test_a_restart_clears_batches_the_database_applied_before_anything_merges_them(
    replicas: Any, pg_url: str, tmp_path: Path
) -> None:
    one = replicas("r1")
    one.record("users-v0", "use", "job", time.time(), 5)
    await one._spool_pending(time.time())
    batch = one.spool.oldest()
    assert batch is not None
    await one._send(await one._connect(), batch, time.time())  # committed, then "stopped"
    await one._disconnect()
    one.spool.close()
    again = PgLedger(pg_url, "r1", str(tmp_path / "r1"), 400, 10_000)  # the same state_dir
    try:
        assert again.spool.rows == 1
        await again._connect()
        assert again.spool.rows == 0  # nothing left that a merge could apply twice
        assert clients(await again.fleet(IDS, time.time(), 30), "users-v0") == {"job": 5}
    finally:
        await again.close()


async def test_a_full_spool_merges_then_keeps_the_batch_in_memory(tmp_path: Path) -> None:
    merged: list[int] = []
    away = "postgresql://u:s3cret@127.0.0.1:9/x?connect_timeout=2"  # nothing listens there
    ledger = PgLedger(away, "r1", str(tmp_path), 400, 2, LedgerHooks(spool_merged=merged.append))
    ledger.BACKOFF_MIN = ledger.BACKOFF_MAX = 0.0
    now = time.time()
    try:
        ledger.record("users-v0", "use", "a", now - DAY, 2)
        ledger.record("users-v0", "use", "a", now, 3)
        await ledger.flush(now)
        assert ledger.spool.rows == 2 and ledger.error is not None
        assert "s3cret" not in ledger.error
        ledger.record("users-v0", "use", "b", now)
        await ledger.flush(now)
        assert merged == [1] and ledger.spool.rows == 2  # a's two days are one row now
        rows, _ = ledger.spool.unsent()
        assert sorted((r[2], r[4]) for r in rows) == [("a", 5), ("b", 1)]
        ledger.record("users-v0", "use", "c", now)
        await ledger.flush(now)
        assert ledger.spool.rows == 2 and len(ledger._pending) == 1  # c waits in memory
        with pytest.raises(LedgerError) as caught:
            await ledger.fleet(IDS, now, 30)
        assert "s3cret" not in str(caught.value) and "u:***@" in str(caught.value)
    finally:
        await ledger.close()
