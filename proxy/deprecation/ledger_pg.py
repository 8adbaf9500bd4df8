"""The fleet ledger: every replica's usage rows in one PostgreSQL database (``telemetry.ledger``).

Theory of operation. ``record`` (the request path) only adds to memory, as in the SQLite
ledger (``proxy.deprecation.ledger``). Each flush moves what memory holds into the local spool
(``proxy.deprecation.ledger_spool``, a SQLite file in ``state_dir``), in a worker thread, then
delivers the spool's batches oldest first, each in one PostgreSQL transaction of upserts
(``proxy.deprecation.ledger_pg_sql``) that also records the batch number per replica, so that
a batch is applied once. No request waits on either.

The database away (refused, timed out, restarting): the batches stay in the spool, the failure
is counted and logged (the first of a run, then once a minute), and the next delivery waits
``BACKOFF_MIN`` seconds, doubling up to ``BACKOFF_MAX``. The spool is bounded
(``telemetry.spool_max_rows``): it merges rows to make room, keeping counts and first/last
seen exact, and says how many it merged (``hooks.spool_merged``).

Driver: psycopg 3 (``psycopg[binary]``), for its native asyncio connection, its static types
(``mypy --strict`` checks our calls; asyncpg ships none) and array parameters, which turn a
batch into one ``INSERT ... SELECT FROM unnest(...)`` statement. One connection per replica:
the ledger writes one batch at a time and reads rarely, so a pool would only add a package.

Reads (``fleet``): the report's rows come from the database, plus this replica's own rows not
delivered yet (spool and memory), all under the lock that deliveries take, so that no row is
counted twice. A database that cannot be read raises ``LedgerError``: never a partial answer.

Call every method from the event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import msgspec
import psycopg

from proxy.core.dburl import redacted
from proxy.core.fleetreport import ReplicaState, observed_in_window
from proxy.core.report import DAY, UsageRow
from proxy.deprecation import ledger_pg_sql as sql
from proxy.deprecation.ledger import LedgerHooks
from proxy.deprecation.ledger_memory import Observation, Pending, Tally, aggregate, day_of, touches
from proxy.deprecation.ledger_spool import Spool, SpoolBatch, SpoolFull
from proxy.errors import LedgerError

log = logging.getLogger("switchback.ledger")

CONNECT_TIMEOUT = 5  # seconds
STATEMENT_TIMEOUT_MS = 30_000
PRUNE_EVERY = 3600.0
LOG_EVERY = 60.0


class Fleet(msgspec.Struct, frozen=True, kw_only=True):
    """What the report needs from the fleet ledger."""

    usage: list[UsageRow]
    observed: dict[str, float]
    replicas: list[ReplicaState]
    own_unsent: int
    own_elements: list[str]


class PgLedger:
    BACKOFF_MIN = 1.0
    BACKOFF_MAX = 30.0

    def __init__(
        self,
        url: str,
        replica: str,
        state_dir: str,
        retention_days: int,
        spool_max_rows: int,
        hooks: LedgerHooks | None = None,
        now: float | None = None,
    ) -> None:
        self.url = url
        self.shown = redacted(url)
        self.replica = replica
        self.retention_days = retention_days
        self.hooks = hooks or LedgerHooks()
        self.spool = Spool(state_dir, spool_max_rows)  # raises OSError, sqlite3.Error
        self._pending = Pending()
        self._seen = Observation(time.time() if now is None else now)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[None]] = set()
        self._retry_at = 0.0  # monotonic
        self._backoff = self.BACKOFF_MIN
        self._next_prune = 0.0
        self._failures = 0
        self._logged_at = -LOG_EVERY
        self.error: str | None = None
        self.dropped = 0
        self.merged = 0
        self.pruned = 0  # prunes this replica made
        self._closed = False
        self.hooks.spool_rows(self.spool.rows)

    # -- the request path (as proxy.deprecation.ledger.Ledger) ------------------------------

    def record(self, element: str, kind: str, client: str, now: float, count: int = 1) -> None:
        if not self._pending.add(element, kind, client, now, count):
            if not self.dropped:
                log.error("ledger %s: %d keys wait in memory, the most it keeps; touches of new "
                          "clients are dropped until the spool takes them", self.shown,
                          len(self._pending))  # fmt: skip
            self.dropped += count
            self.hooks.dropped(count)
            self._seen.lose(element, day_of(now))

    def register_elements(self, ids: Iterable[str], now: float) -> None:
        self._seen.register(ids, now)

    def watch(self, ids: Iterable[str], now: float) -> None:
        self._seen.watch(ids, now)

    # -- writing ----------------------------------------------------------------------------

    async def flush(self, now: float | None = None) -> None:
        """Spools what memory holds, then delivers the spool (unless backing off). Finishes
        even when the caller is cancelled. Failures are counted and logged, never raised."""
        task = asyncio.ensure_future(self._flush(time.time() if now is None else now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _flush(self, now: float) -> None:
        await self._spool_pending(now)
        if time.monotonic() >= self._retry_at:
            await self._deliver(now)

    async def _spool_pending(self, now: float) -> None:
        """Moves what memory holds into the spool (one batch)."""
        async with self._lock:
            self._seen.mark(now)
            batch = self._seen.take(0, self._pending.take())
            try:
                if not batch.empty():
                    merged = await asyncio.to_thread(self.spool.append, batch, self._seen.since)
                    if merged:
                        self.merged += merged
                        self.hooks.spool_merged(merged)
                        log.warning("ledger spool %s: %d row(s) merged to stay within %d rows",
                                    self.spool.path, merged, self.spool.max_rows)  # fmt: skip
            except Exception as exc:  # SpoolFull, a full disk: the batch waits in memory
                self._pending.put_back(batch.usage)
                self._seen.put_back(batch)
                self._failed(exc, "cannot spool")
            finally:
                self._pending.inflight = None
            self.hooks.spool_rows(self.spool.rows)

    async def _deliver(self, now: float) -> None:
        try:
            while True:
                async with self._lock:
                    conn = await self._connect()
                    batch = await asyncio.to_thread(self.spool.oldest)
                    if batch is None:
                        break
                    await self._send(conn, batch, now)
                    await asyncio.to_thread(self.spool.delete, batch.seq)
                    self.hooks.spool_rows(self.spool.rows)
            if now >= self._next_prune:
                await self._prune(conn, now)
        except (psycopg.Error, OSError, sqlite3.Error) as exc:
            await self._disconnect()
            self._retry_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.BACKOFF_MAX)
            self._failed(exc, "cannot deliver to the database")
        else:
            self._succeeded()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = await psycopg.AsyncConnection.connect(
            self.url,
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            application_name=f"switchback {self.replica}"[:63],
        )
        try:
            await migrate(conn)
            await self._clear_applied(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def _clear_applied(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Forgets the spool's batches the database applied already (the process stopped
        between a commit and clearing the spool), before they could be merged with others."""
        cur = await conn.execute(
            "SELECT spool, last_batch FROM replicas WHERE replica = %s", (self.replica,)
        )
        found = await cur.fetchone()
        if found is not None and found[0] == self.spool.spool_id:
            await asyncio.to_thread(self.spool.delete_through, int(found[1]))

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except (psycopg.Error, OSError):  # a connection already gone
                pass

    async def _send(
        self, conn: psycopg.AsyncConnection[Any], batch: SpoolBatch, now: float
    ) -> None:
        """One transaction: the batch's upserts and the replica's row; nothing when the
        database says it applied this batch already."""
        left_rows, left_elements = await asyncio.to_thread(self.spool.after, batch.seq)
        async with conn.transaction():
            cur = await conn.execute(sql.LAST_BATCH, (self.replica,))
            found = await cur.fetchone()
            if found is not None and found[0] == self.spool.spool_id and found[1] >= batch.seq:
                return
            if batch.usage:
                await conn.execute(sql.UPSERT_USAGE, sql.columns(list(batch.usage), 7))
            if batch.elements:
                await conn.execute(sql.UPSERT_ELEMENTS, sql.columns(list(batch.elements), 2))
            if batch.watched:
                await conn.execute(sql.UPSERT_WATCHED, sql.columns(list(batch.watched), 3))
            await conn.execute(sql.UPSERT_SINCE, (str(batch.since),))
            await conn.execute(
                sql.UPSERT_REPLICA,
                (self.replica, self.spool.spool_id, batch.seq, now, left_rows, left_elements),
            )

    async def _prune(self, conn: psycopg.AsyncConnection[Any], now: float) -> None:
        """Deletes the days past retention, if no other replica is doing so right now."""
        self._next_prune = now + PRUNE_EVERY
        first_day = day_of(now - self.retention_days * DAY)
        async with self._lock:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (sql.PRUNE_LOCK,))
            got = await cur.fetchone()
            if not (got and got[0]):
                return
            try:
                async with conn.transaction():
                    await conn.execute("DELETE FROM usage WHERE day < %s", (first_day,))
                    await conn.execute("DELETE FROM watched WHERE day < %s", (first_day,))
                self.pruned += 1
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (sql.PRUNE_LOCK,))
        self._seen.prune(first_day)

    def _failed(self, exc: BaseException, what: str) -> None:
        self.error = f"{exc} ({type(exc).__name__})".replace(self.url, self.shown)
        self._failures += 1
        self.hooks.write_failed()
        now = time.monotonic()
        if self._failures == 1 or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            expected = isinstance(exc, psycopg.Error | OSError | SpoolFull)
            log.error("ledger %s: %s: %s; %d row(s) wait in the spool %s (failure %d in a row)",
                      self.shown, what, self.error, self.spool.rows, self.spool.path,
                      self._failures, exc_info=None if expected else exc)  # fmt: skip

    def _succeeded(self) -> None:
        if self._failures:
            log.warning("ledger %s: delivered again after %d failed attempt(s)", self.shown,
                        self._failures)  # fmt: skip
        self._failures = 0
        self._backoff = self.BACKOFF_MIN
        self.error = None
        self.dropped = 0

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):  # counted and logged by flush
                await self.flush()

    async def close(self) -> None:
        """Spools what is pending, tries one delivery, and closes. What is not delivered stays
        in the spool for the next start."""
        if self._closed:
            return
        self._closed = True
        self._retry_at = 0.0
        await self.flush()
        for task in list(self._tasks):
            await asyncio.wait([task])
        await self._disconnect()
        self.spool.close()

    def health(self) -> dict[str, Any]:
        return {
            "database": self.shown,
            "replica": self.replica,
            "ok": self.error is None,
            "error": self.error,
            "unflushed": len(self._pending),
            "spool_rows": self.spool.rows,
            "spool_merged": self.merged,
            "dropped": self.dropped,
        }

    # -- reading ----------------------------------------------------------------------------

    async def fleet(self, ids: list[str], now: float, days: int) -> Fleet:
        """The fleet's rows and observation for the window of ``days`` before ``now``."""
        since = now - days * DAY
        first_day, last_day = day_of(since), day_of(now)
        async with self._lock:
            try:
                conn = await self._connect()
                stored, watched, firsts, meta, replicas = await _read(conn, since, now)
            except (psycopg.Error, OSError) as exc:
                await self._disconnect()
                error = str(exc).replace(self.url, self.shown)
                raise LedgerError(f"ledger {self.shown} cannot be read now: {error}") from None
            spooled, own_elements = await asyncio.to_thread(self.spool.unsent)
            unflushed = self._pending.snapshot()
        rows = [(e, c, k, Tally(int(n), f, last)) for e, c, k, n, f, last in stored]
        rows += [
            (e, c, k, Tally(n, f, last)) for e, k, c, _, n, f, last in spooled if last >= since
        ]
        local = list(touches(unflushed, since))
        usage = aggregate([*rows, *local])
        first_configured = {str(e): float(t) for e, t in firsts}
        for element, t in self._seen.first_configured.items():  # not delivered yet
            first_configured[element] = min(first_configured.get(element, t), t)
        counts = self._watched_days(watched, first_day, last_day)
        start = min(float(meta[0]), self._seen.since) if meta else self._seen.since
        states = [ReplicaState(replica=r, last_write=w, unsent_rows=u,
                               unsent_elements=tuple(el)) for r, w, u, el in replicas]  # fmt: skip
        if self.replica not in {s.replica for s in states}:
            states.append(ReplicaState(replica=self.replica, last_write=now, unsent_rows=0,
                                       unsent_elements=()))  # fmt: skip
        return Fleet(
            usage=usage,
            observed=observed_in_window(first_configured, start, counts, ids, now, days),
            replicas=states,
            own_unsent=self.spool.rows + len(self._pending),
            own_elements=sorted(set(own_elements) | {k[0] for d in unflushed for k in d}),
        )

    def _watched_days(
        self, stored: list[tuple[Any, ...]], first_day: int, last_day: int
    ) -> dict[str, int]:
        """Per element, the days in the window some replica watched it (this one's not yet
        delivered included) and none lost a touch of it."""
        days: dict[str, set[int]] = {}
        lost = set(self._seen.lossy)
        for element, day, lossy in stored:
            if lossy:
                lost.add((str(element), int(day)))
            else:
                days.setdefault(str(element), set()).add(int(day))
        for element, mine in self._seen.watched.items():
            days.setdefault(element, set()).update(d for d in mine if first_day <= d <= last_day)
        return {e: sum(1 for d in ds if (e, d) not in lost) for e, ds in days.items()}


async def _read(conn: psycopg.AsyncConnection[Any], since: float, now: float) -> tuple[Any, ...]:
    """The report's queries, in one snapshot."""
    first_day, last_day = day_of(since), day_of(now)
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        queries: list[tuple[str, tuple[Any, ...]]] = [
            (sql.USAGE_SINCE, (first_day, since)),
            (sql.WATCHED_IN, (first_day, last_day)),
            ("SELECT id, first_configured FROM elements", ()),
            ("SELECT value FROM meta WHERE key = 'observing_since'", ()),
            (sql.REPLICAS_SINCE, (since,)),
        ]
        out = [await (await conn.execute(q, p)).fetchall() for q, p in queries]
    stored, watched, firsts, meta, replicas = out
    return stored, watched, firsts, meta[0] if meta else None, replicas


async def migrate(conn: psycopg.AsyncConnection[Any]) -> int:
    """Brings the database to ``SCHEMA_VERSION`` under the migration lock; returns the steps
    applied (0 when it was there, or newer)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (sql.MIGRATION_LOCK,))
        await conn.execute(sql.CREATE_VERSIONS)
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM ledger_schema")
        found = await cur.fetchone()
        version = int(found[0]) if found else 0
        for step in range(version + 1, sql.SCHEMA_VERSION + 1):
            await conn.execute(sql.MIGRATIONS[step].encode())
            await conn.execute("INSERT INTO ledger_schema (version) VALUES (%s)", (step,))
    return max(0, sql.SCHEMA_VERSION - version)
