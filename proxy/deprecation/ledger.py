"""The deprecation ledger: per client, how often and when each deprecated element was touched.

Theory of operation. ``record`` runs on the request path and only adds to an in-memory dict
keyed (element, kind, client, UTC day). ``flush`` swaps that dict out and writes it in one
SQLite transaction in a worker thread, adding counts to the stored rows (upsert), so no request
ever waits on the disk. The runtime runs ``run`` as a background task; ``close`` writes the rest.
The file itself (schema, SQL, corruption) is ``proxy.deprecation.ledger_db``'s; what waits in
memory, and the record of which days each element was watched,
``proxy.deprecation.ledger_memory``'s.

A flush that fails rolls back and puts its batch back for the next flush. A flush whose caller
is cancelled still finishes its write, and the next flush waits for it, so a batch is written
at most once. Until a batch is committed, ``usage_since`` counts it from memory.

Bad disks and bad files; telemetry is never worth an outage:

- A file that cannot be opened or written for now (full or read-only disk, I/O error): the
  counts wait in memory, every failure is counted (``hooks.write_failed``) and logged (the
  first of a run of failures, then once a minute), the next flush tries again (opening the file
  first when it never opened). Memory stays bounded (``ledger_memory.MAX_PENDING`` keys): a
  touch beyond that is dropped and counted (``hooks.dropped``), and its element's day no
  longer counts as watched.
- A corrupt file (found at start-up, at a flush or at a read): it is renamed aside
  (``ledger.sqlite3.corrupt-<UTC time>``, with its ``-wal`` and ``-shm`` files), a new ledger
  starts, a warning names both paths, ``hooks.reset`` counts it. The new ledger observes from
  now on: what the old one had watched no longer counts towards "safe to remove".

Threads: one sqlite3 connection, opened with ``check_same_thread=False`` and guarded by a
``threading.Lock``, because writes run in worker threads and reads in the event loop. Everything
else (the pending dicts, the connection attribute, the hooks) belongs to the event loop thread:
call every method from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from proxy.core.report import DAY, UsageRow
from proxy.deprecation import ledger_db
from proxy.deprecation.ledger_memory import (
    Batch,
    Observation,
    Pending,
    Tally,
    aggregate,
    day_of,
    day_text,
    touches,
)
from proxy.errors import LedgerError

__all__ = ["Ledger", "LedgerHooks", "UsageRow"]

log = logging.getLogger("switchback.ledger")

PRUNE_EVERY = 3600.0  # seconds between two deletions of rows past retention
LOG_EVERY = 60.0  # while flushes keep failing, one log line per this many seconds

Opened = tuple[ledger_db.Opened, list[tuple[str, str]], str | None]  # file, renames, why


def _nothing(*args: Any) -> None:
    return None


@dataclass(frozen=True)
class LedgerHooks:
    """What the ledger tells its owner (the metrics); called in the event loop thread."""

    write_failed: Callable[[], None] = _nothing  # a flush or an opening failed
    reset: Callable[[], None] = _nothing  # a corrupt file was set aside for a new one
    dropped: Callable[[int], None] = _nothing  # touches not kept: the batch was full
    # The fleet ledger's spool (proxy.deprecation.ledger_pg): rows waiting, rows merged.
    spool_rows: Callable[[int], None] = _nothing
    spool_merged: Callable[[int], None] = _nothing


class Ledger:
    """The embedded SQLite ledger at ``path`` (created if missing, with its directory).

    Opening reads the file (schema, ``observing_since``, element registrations): do it at
    startup, before traffic, or in a worker thread. A file that cannot be opened does not
    raise: the ledger counts in memory and opens it at a later flush.
    """

    def __init__(
        self,
        path: str,
        retention_days: int,
        now: float | None = None,
        hooks: LedgerHooks | None = None,
    ) -> None:
        """``now`` is when a new ledger starts observing (default: the current time)."""
        self.path = path
        self.retention_days = retention_days
        self.hooks = hooks or LedgerHooks()
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._generation = 0  # one more for every file set aside
        self._broken: str | None = None  # the file in use is corrupt: why (replaced next flush)
        self.error: str | None = None  # the last failure, until a flush succeeds
        self._failures = 0  # in a row
        self._logged_at = -LOG_EVERY
        self.dropped = 0  # touches not kept since the last flush that succeeded
        self._pending = Pending()
        self._seen = Observation(time.time() if now is None else now)
        self._writing: asyncio.Future[Any] | None = None
        self._next_prune = 0.0
        self._closed = False
        try:
            opened = self._open_file(self._seen.since)
        except Exception as exc:
            self._failed(exc)
        else:
            self._opened(opened)

    # -- the request path ------------------------------------------------------------------

    def record(self, element: str, kind: str, client: str, now: float, count: int = 1) -> None:
        """Counts ``count`` touches of ``element`` by ``client`` at ``now``. Memory only, O(1).

        ``kind``: "use" (the client sent it), "exposure" (the client received it), "read"
        (received, and named in the client's field list) or "unread" (received, and left out
        of the client's field list). Only uses and exposures add to ``UsageRow.count``.
        ``client`` is the full client id, not the bounded metric label.
        """
        if not self._pending.add(element, kind, client, now, count):
            self._drop(element, day_of(now), count)

    def _drop(self, element: str, day: int, count: int) -> None:
        """The batch is full (the file has not been writable for long): the touch is lost, so
        this element's day cannot count as watched."""
        if not self.dropped:
            log.error("ledger %s: %d unflushed keys in memory, the most it keeps; touches of "
                      "new clients are dropped until a flush succeeds", self.path,
                      len(self._pending))  # fmt: skip
        self.dropped += count
        self.hooks.dropped(count)
        self._seen.lose(element, day)

    def register_elements(self, ids: Iterable[str], now: float) -> None:
        """Remembers ``now`` as the first time each new element id was configured.

        Ids seen before keep their first date. Written with the next flush.
        """
        self._seen.register(ids, now)

    def watch(self, ids: Iterable[str], now: float) -> None:
        """From now on ``ids`` are the configured elements; the day of ``now`` counts as watched
        for them (every flush marks its own day too)."""
        self._seen.watch(ids, now)

    # -- opening and replacing the file ----------------------------------------------------

    def _open_file(self, since: float) -> Opened:
        """Runs in a worker thread (or at start-up)."""
        return ledger_db.open_or_replace(self.path, since)

    def _opened(self, outcome: Opened) -> None:
        """Takes an opened file into use (event loop thread)."""
        opened, moved, why = outcome
        if moved:
            self._replaced(moved, why)
        self._conn = opened.conn
        self._seen.adopt(opened)

    def _set_aside(self, old: sqlite3.Connection) -> list[tuple[str, str]]:
        """Runs in a worker thread: renames the corrupt file in use, then closes it."""
        try:
            return ledger_db.set_aside(self.path)
        finally:
            with self._lock:
                old.close()

    def _was_set_aside(self, why: str, future: asyncio.Future[Any]) -> None:
        self._writing = None
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._failed(exc)  # opened again at the next flush, and found corrupt again
        else:
            self._replaced(future.result(), why)

    def _replaced(self, moved: list[tuple[str, str]], why: str | None) -> None:
        self._generation += 1
        self._seen.forget(time.time())
        log.warning("ledger %s was corrupt (%s): set aside as %s; a new ledger starts, and "
                    "deprecation counting goes on in it", self.path, why,
                    moved[0][1])  # fmt: skip
        self.hooks.reset()

    def _corrupt(self, why: str) -> None:
        """The file in use is corrupt: replaced at the next flush, and its history no longer
        counts (the report must not count days it cannot read back)."""
        if self._broken is None:
            self._broken = why
            self._seen.forget(time.time())

    # -- failures --------------------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        self.error = f"{exc} ({type(exc).__name__})"
        self._failures += 1
        self.hooks.write_failed()
        now = time.monotonic()
        if self._failures == 1 or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            expected = isinstance(exc, OSError | sqlite3.Error | ledger_db.LedgerCorrupt)
            log.error("ledger %s: cannot write: %s; %d unflushed key(s) wait in memory for the "
                      "next flush (failure %d in a row)", self.path, self.error,
                      len(self._pending), self._failures,
                      exc_info=None if expected else exc)  # fmt: skip

    def _succeeded(self) -> None:
        if self._failures:
            log.warning("ledger %s: written again after %d failed attempt(s)", self.path,
                        self._failures)  # fmt: skip
        self._failures = 0
        self.error = None
        self.dropped = 0

    # -- writing ---------------------------------------------------------------------------

    async def flush(self, now: float | None = None) -> None:
        """Writes what was recorded since the last flush, in one transaction off the loop.

        Also deletes rows older than ``retention_days``, at most once per ``PRUNE_EVERY``;
        ``now`` (default: the clock) only serves that. A file found corrupt is set aside and
        a new one opened first; a file not open yet is opened first. On failure the batch is
        kept for the next flush, the failure counted and logged, and the error raised.
        """
        while self._writing is not None:  # a write started by an earlier (cancelled) flush
            await asyncio.wait([self._writing])
        now = time.time() if now is None else now
        if self._broken is not None and self._conn is not None:
            old, self._conn = self._conn, None
            aside = functools.partial(self._set_aside, old)
            await self._in_thread(aside, functools.partial(self._was_set_aside, self._broken))
        if self._conn is None:
            self._broken = None
            reopen = functools.partial(self._open_file, self._seen.since)
            await self._in_thread(reopen, self._reopened)
        conn = self._conn
        assert conn is not None  # _reopened set it, or raised
        self._seen.mark(now)
        prune_before = None
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            first_day = day_of(now - self.retention_days * DAY)
            prune_before = (day_text(first_day), first_day)
            self._seen.prune(first_day)
        batch = self._seen.take(self._generation, self._pending.usage)
        if batch.empty() and prune_before is None:
            self._seen.put_back(batch)
            return
        self._pending.take()
        write = functools.partial(self._write, conn, batch, prune_before)
        await self._in_thread(write, functools.partial(self._written, batch))

    async def _in_thread(self, job: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Runs ``job`` in a worker thread; ``done`` gets its future in the loop thread when it
        ends, whether or not the caller was cancelled meanwhile."""
        future = asyncio.ensure_future(asyncio.to_thread(job))
        future.add_done_callback(done)
        self._writing = future
        await asyncio.shield(future)

    def _reopened(self, future: asyncio.Future[Any]) -> None:
        self._writing = None
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._failed(exc)
        else:
            self._opened(future.result())

    def _write(self, conn: sqlite3.Connection, batch: Batch, prune: tuple[str, int] | None) -> None:
        """Runs in a worker thread."""
        rows = [
            (element, kind, client, day_text(day), t.count, t.first, t.last)
            for (element, kind, client, day), t in batch.usage.items()
        ]
        with self._lock:
            ledger_db.write_batch(conn, rows, batch.elements.items(), batch.watched,
                                  batch.lossy, prune)  # fmt: skip
            # Under the lock, so that usage_since sees the batch either on disk or in memory.
            self._pending.inflight = None

    def _written(self, batch: Batch, writing: asyncio.Future[None]) -> None:
        """Runs in the event loop when a write ends, whether or not its flush was cancelled."""
        self._writing = None
        self._pending.inflight = None
        if writing.cancelled():
            return
        exc = writing.exception()
        if exc is None:
            self._succeeded()
            return
        self._pending.put_back(batch.usage)
        self._seen.put_back(batch)
        self._failed(exc)
        if ledger_db.is_corrupt(exc) and batch.generation == self._generation:
            self._corrupt(str(exc))

    async def run(self, interval: float) -> None:
        """Flushes every ``interval`` seconds until cancelled; failures are counted and logged
        by ``flush`` and retried at the next."""
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await self.flush()

    async def close(self) -> None:
        """Writes what is pending and closes the file. Cancel the ``run`` task first. What
        cannot be written is logged as lost, never raised."""
        if self._closed:
            return
        try:
            await self.flush()
        except Exception:
            log.error("ledger %s: %d unflushed key(s) lost at exit: %s", self.path,
                      len(self._pending), self.error)  # fmt: skip
        finally:
            self._closed = True
            with self._lock:
                if self._conn is not None:
                    self._conn.close()

    def health(self) -> dict[str, Any]:
        """For ``/status``: whether the file takes writes, and what waits in memory."""
        return {
            "file": self.path,
            "ok": self.error is None,
            "error": self.error,
            "unflushed": len(self._pending),
            "dropped": self.dropped,
        }

    # -- reading ---------------------------------------------------------------------------

    def usage_since(self, since: float) -> list[UsageRow]:
        """Per (element, client), everything touched at or after ``since``, flushed or not.

        Counts are kept per UTC day: a day last touched at or after ``since`` counts whole, so
        ``count`` (and ``first_seen``) may include touches up to a day before ``since``.
        Reads the file in the calling thread; waits if a flush is writing. A file that cannot
        be read raises ``LedgerError``: never a partial answer, which could make an element
        look unused.
        """
        stored: list[tuple[str, str, str, int, float, float]] = []
        error: sqlite3.Error | None = None
        with self._lock:
            try:
                if self._conn is not None:
                    stored = ledger_db.read_usage(self._conn, day_text(day_of(since)), since)
            except sqlite3.Error as exc:
                error = exc
            unflushed = self._pending.snapshot()
        if error is not None:
            if ledger_db.is_corrupt(error):
                self._corrupt(str(error))
            raise LedgerError(f"ledger {self.path} cannot be read now: {error}") from None
        rows = ((e, c, k, Tally(n, f, last)) for e, c, k, n, f, last in stored)
        return aggregate(itertools.chain(rows, touches(unflushed, since)))

    def observing_since(self) -> float:
        """When this ledger file was first opened (unix seconds); kept across restarts."""
        return self._seen.since

    def first_configured(self, element: str) -> float | None:
        """When ``element`` was first registered, or None if it never was."""
        return self._seen.first_configured.get(element)

    def watched_days(self, element: str, since: float, until: float | None = None) -> int:
        """On how many days from ``since`` to ``until`` (UTC days, both included; default: no
        end) the element was configured and Switchback was running."""
        return self._seen.watched_days(element, since, until)

    def observed_in_window(self, ids: Iterable[str], now: float, days: int) -> dict[str, float]:
        """For ``build_report``: see ``Observation.observed_in_window``."""
        return self._seen.observed_in_window(ids, now, days)

    def observed_since(self, ids: Iterable[str]) -> dict[str, float]:
        """For ``build_report``: see ``Observation.observed_since``."""
        return self._seen.observed_since(ids)
