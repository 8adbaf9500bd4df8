"""The deprecation ledger: per client, how often and when each deprecated element was touched.

Theory of operation. ``record`` runs on the request path and only adds to an in-memory dict
keyed (element, kind, client, UTC day). ``flush`` swaps that dict out and writes it in one
SQLite transaction in a worker thread, adding counts to the stored rows (upsert), so no request
ever waits on the disk. The runtime runs ``run`` as a background task; ``close`` writes the rest.

A flush that fails rolls back and puts its batch back for the next flush. A flush whose caller
is cancelled still finishes its write, and the next flush waits for it, so a batch is written
at most once. Until a batch is committed, ``usage_since`` counts it from memory.

Threads: one sqlite3 connection, opened with ``check_same_thread=False`` and guarded by a
``threading.Lock``, because writes run in worker threads and reads in the event loop. Everything
else (the pending dicts) belongs to the event loop thread: call every method from there.

Schema (``PRAGMA journal_mode=WAL``, ``synchronous=NORMAL``: a crash of the machine may lose the
last flush, never corrupt the file):

    usage(element, kind, client, day 'YYYY-MM-DD' UTC, count, first_seen, last_seen)
          primary key (element, kind, client, day); kind is "use" or "exposure"
    meta(key, value)                  observing_since: when this ledger was first opened
    elements(id, first_configured)    when each element id first appeared in config
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from proxy.report import DAY, UsageRow

__all__ = ["Ledger", "UsageRow"]

log = logging.getLogger("switchback.ledger")

PRUNE_EVERY = 3600.0  # seconds between two deletions of rows past retention

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    element TEXT NOT NULL,
    kind TEXT NOT NULL,
    client TEXT NOT NULL,
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (element, kind, client, day)
);
CREATE INDEX IF NOT EXISTS usage_day ON usage (day);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS elements (id TEXT PRIMARY KEY, first_configured REAL NOT NULL);
CREATE TABLE IF NOT EXISTS watched (
    element TEXT NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (element, day)
);
"""

_UPSERT = """
INSERT INTO usage (element, kind, client, day, count, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (element, kind, client, day) DO UPDATE SET
    count = count + excluded.count,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen)
"""

# The day filter selects nothing more than the last_seen one (last_seen falls within its day);
# it is there so that SQLite reads the day index instead of the whole table.
_USAGE_SINCE = """
SELECT element, client, kind, sum(count), min(first_seen), max(last_seen) FROM usage
WHERE day >= ? AND last_seen >= ? GROUP BY element, client, kind
"""

Key = tuple[str, str, str, int]  # element, kind, client, day number (whole days since epoch)


class _Tally:
    __slots__ = ("count", "first", "last")

    def __init__(self, count: int, first: float, last: float) -> None:
        self.count = count
        self.first = first
        self.last = last

    def merge(self, other: _Tally) -> None:
        self.count += other.count
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)


def _merge_into(target: dict[Key, _Tally], batch: dict[Key, _Tally]) -> None:
    for key, tally in batch.items():
        mine = target.get(key)
        if mine is None:
            target[key] = tally
        else:
            mine.merge(tally)


def _day_number(day_text: str) -> int:
    """'YYYY-MM-DD' -> days since the epoch (UTC)."""
    return int(calendar.timegm(time.strptime(day_text, "%Y-%m-%d")) // DAY)


def _day(ts: float) -> int:
    return int(ts // DAY)


@functools.lru_cache(maxsize=64)
def _day_text(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


class Ledger:
    """The embedded SQLite ledger at ``path`` (created if missing, with its directory).

    Opening reads the file (schema, ``observing_since``, element registrations): do it at
    startup, before traffic, or in a worker thread.
    """

    def __init__(self, path: str, retention_days: int, now: float | None = None) -> None:
        """``now`` is when a new ledger starts observing (default: the current time)."""
        self.path = path
        self.retention_days = retention_days
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('observing_since', ?)",
                (time.time() if now is None else now,),
            )
        (since,) = self._conn.execute(
            "SELECT value FROM meta WHERE key = 'observing_since'"
        ).fetchone()
        self._observing_since = float(since)
        self._first_configured: dict[str, float] = dict(
            self._conn.execute("SELECT id, first_configured FROM elements")
        )
        # Days (since the epoch, UTC) on which each element was configured and watched: time
        # Switchback was down, or an element was out of the config, is not observation.
        self._watched: dict[str, set[int]] = {}
        for element, day in self._conn.execute("SELECT element, day FROM watched"):
            self._watched.setdefault(element, set()).add(int(day))
        self._watching: set[str] = set()
        self._pending_watched: set[tuple[str, int]] = set()
        self._pending: dict[Key, _Tally] = {}
        self._pending_elements: dict[str, float] = {}
        self._inflight: dict[Key, _Tally] | None = None  # being written; cleared on commit
        self._writing: asyncio.Future[None] | None = None
        self._next_prune = 0.0
        self._closed = False

    # -- the request path ------------------------------------------------------------------

    def record(self, element: str, kind: str, client: str, now: float, count: int = 1) -> None:
        """Counts ``count`` touches of ``element`` by ``client`` at ``now``. Memory only, O(1).

        ``kind``: "use" (the client sent it) or "exposure" (the client received it).
        ``client`` is the full client id, not the bounded metric label.
        """
        key = (element, kind, client, int(now // DAY))
        tally = self._pending.get(key)
        if tally is None:
            self._pending[key] = _Tally(count, now, now)
        else:
            tally.count += count
            if now < tally.first:
                tally.first = now
            if now > tally.last:
                tally.last = now

    def register_elements(self, ids: Iterable[str], now: float) -> None:
        """Remembers ``now`` as the first time each new element id was configured.

        Ids seen before keep their first date. Written with the next flush.
        """
        ids = list(ids)
        for element in ids:
            if element not in self._first_configured:
                self._first_configured[element] = now
                self._pending_elements[element] = now
        self.watch(ids, now)

    def watch(self, ids: Iterable[str], now: float) -> None:
        """From now on ``ids`` are the configured elements; the day of ``now`` counts as watched
        for them (every flush marks its own day too)."""
        self._watching = set(ids)
        self._mark(now)

    def _mark(self, now: float) -> None:
        day = _day(now)
        for element in self._watching:
            days = self._watched.setdefault(element, set())
            if day not in days:
                days.add(day)
                self._pending_watched.add((element, day))

    # -- writing ---------------------------------------------------------------------------

    async def flush(self, now: float | None = None) -> None:
        """Writes what was recorded since the last flush, in one transaction off the loop.

        Also deletes rows older than ``retention_days``, at most once per ``PRUNE_EVERY``;
        ``now`` (default: the clock) only serves that. On failure the batch is kept for the
        next flush and the error raised.
        """
        while self._writing is not None:  # a write started by an earlier (cancelled) flush
            await asyncio.wait([self._writing])
        now = time.time() if now is None else now
        self._mark(now)
        prune_before = None
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            prune_before = _day_text(_day(now - self.retention_days * DAY))
        nothing = not self._pending and not self._pending_elements and not self._pending_watched
        if nothing and prune_before is None:
            return
        usage, self._pending = self._pending, {}
        elements, self._pending_elements = self._pending_elements, {}
        watched, self._pending_watched = self._pending_watched, set()
        self._inflight = usage
        writing = asyncio.ensure_future(
            asyncio.to_thread(self._write, usage, elements, prune_before, watched)
        )
        writing.add_done_callback(functools.partial(self._written, usage, elements, watched))
        self._writing = writing
        await asyncio.shield(writing)

    def _write(
        self,
        usage: dict[Key, _Tally],
        elements: dict[str, float],
        prune_before: str | None,
        watched: set[tuple[str, int]] | None = None,
    ) -> None:
        """Runs in a worker thread."""
        rows = [
            (element, kind, client, _day_text(day), t.count, t.first, t.last)
            for (element, kind, client, day), t in usage.items()
        ]
        with self._lock:
            with self._conn:  # one transaction: commit, or roll back on error
                self._conn.executemany(_UPSERT, rows)
                self._conn.executemany(
                    "INSERT OR IGNORE INTO elements (id, first_configured) VALUES (?, ?)",
                    elements.items(),
                )
                self._conn.executemany(
                    "INSERT OR IGNORE INTO watched (element, day) VALUES (?, ?)", watched or ()
                )
                if prune_before is not None:
                    self._conn.execute("DELETE FROM usage WHERE day < ?", (prune_before,))
                    self._conn.execute(
                        "DELETE FROM watched WHERE day < ?", (_day_number(prune_before),)
                    )
            # Under the lock, so that usage_since sees the batch either on disk or in memory.
            self._inflight = None

    def _written(
        self,
        usage: dict[Key, _Tally],
        elements: dict[str, float],
        watched: set[tuple[str, int]],
        writing: asyncio.Future[None],
    ) -> None:
        """Runs in the event loop when a write ends, whether or not its flush was cancelled."""
        self._writing = None
        self._inflight = None
        if writing.cancelled() or writing.exception() is None:
            return
        _merge_into(self._pending, usage)
        for element, ts in elements.items():
            self._pending_elements.setdefault(element, ts)
        self._pending_watched |= watched

    async def run(self, interval: float) -> None:
        """Flushes every ``interval`` seconds until cancelled; failures are logged and retried."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception:
                log.exception("ledger %s: flush failed; the data waits for the next", self.path)

    async def close(self) -> None:
        """Writes what is pending and closes the file. Cancel the ``run`` task first."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            with self._lock:
                self._conn.close()

    # -- reading ---------------------------------------------------------------------------

    def usage_since(self, since: float) -> list[UsageRow]:
        """Per (element, client), everything touched at or after ``since``, flushed or not.

        Counts are kept per UTC day: a day last touched at or after ``since`` counts whole, so
        ``count`` (and ``first_seen``) may include touches up to a day before ``since``.
        Reads the file in the calling thread; waits if a flush is writing.
        """
        with self._lock:
            stored = self._conn.execute(_USAGE_SINCE, (_day_text(_day(since)), since)).fetchall()
            unflushed = (self._pending, self._inflight or {})
        touches = itertools.chain(
            ((e, c, k, _Tally(n, f, last)) for e, c, k, n, f, last in stored),
            (
                (e, c, k, t)
                for batch in unflushed
                for (e, k, c, _), t in batch.items()
                if t.last >= since
            ),
        )
        totals: dict[tuple[str, str], tuple[set[str], _Tally]] = {}
        for element, client, kind, tally in touches:
            total = totals.get((element, client))
            if total is None:
                totals[element, client] = ({kind}, _Tally(tally.count, tally.first, tally.last))
            else:
                total[0].add(kind)
                total[1].merge(tally)
        return [
            UsageRow(
                element=element,
                client=client,
                kinds=tuple(sorted(kinds)),
                count=t.count,
                first_seen=t.first,
                last_seen=t.last,
            )
            for (element, client), (kinds, t) in totals.items()
        ]

    def observing_since(self) -> float:
        """When this ledger file was first opened (unix seconds); kept across restarts."""
        return self._observing_since

    def first_configured(self, element: str) -> float | None:
        """When ``element`` was first registered, or None if it never was."""
        return self._first_configured.get(element)

    def watched_days(self, element: str, since: float, until: float | None = None) -> int:
        """On how many days from ``since`` to ``until`` (UTC days, both included; default: no
        end) the element was configured and Switchback was running."""
        first = _day(since)
        last = _day(until) if until is not None else None
        days = self._watched.get(element, ())
        return sum(1 for day in days if day >= first and (last is None or day <= last))

    def observed_in_window(self, ids: Iterable[str], now: float, days: int) -> dict[str, float]:
        """For ``build_report``: per registered id, an equivalent "watched since" for the
        window of ``days`` before ``now``: the time since it was first watched, but no more
        than the days it was actually watched (downtime and time out of the config do not
        count). Day granularity: a day counts when it was watched at all."""
        out = {}
        for element, since in self.observed_since(ids).items():
            watched = self.watched_days(element, now - days * DAY, now) * DAY
            out[element] = now - min(now - since, watched)
        return out

    def observed_since(self, ids: Iterable[str]) -> dict[str, float]:
        """For ``build_report``: per registered id, since when the ledger has been watching it
        (the later of ``observing_since`` and its first registration)."""
        return {
            element: max(self._observing_since, first)
            for element in ids
            if (first := self._first_configured.get(element)) is not None
        }
