"""The write journal: entries queued on the request path, written in batches off it.

Theory of operation. ``append`` runs on the request path and only puts the entry on a bounded
in-memory queue (``journal.queue_size``); when the queue is full the entry is dropped and
counted (``hooks.dropped``, ``switchback_journal_dropped_total``), never waited for. ``run``
(a background task) calls ``flush`` every ``journal.flush_seconds`` (at most 1 s): it takes the
queue and writes it in one SQLite transaction in a worker thread (``proxy.journal.store``), with
the retention applied in the same transaction. Once that commit returns, the entries survive a
SIGKILL of the process (and, with ``synchronous=FULL``, a power cut).

A write that fails (a full or read-only disk, a file that could not be opened) puts its batch
back at the head of the queue for the next flush, as far as the queue's bound allows (the rest
is dropped and counted); every failure is counted and logged (the first of a run, then once a
minute). A flush whose caller is cancelled still finishes its write: a batch is written once.

Episodes: a rollback's answer says how many entries the candidate wrote since it began to carry
traffic, taken as the last rollback or promotion (``episode_start``, kept in the file). Those
counts are kept in memory (read from the file at opening), so the answer reads no disk.

Threads: one sqlite3 connection guarded by a ``threading.Lock`` (writes and reads run in
worker threads); everything else belongs to the event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from proxy.errors import JournalError
from proxy.journal import store
from proxy.journal.entry import Entry
from proxy.schema import JournalConfig

log = logging.getLogger("switchback.journal")

T = TypeVar("T")
# The connection, the renames of a corrupt file set aside, the stored episode start, and
# per release the entries since then.
Opened = tuple[sqlite3.Connection, list[tuple[str, str]], float | None, dict[str, int]]
LOG_EVERY = 60.0
EPISODE = "episode_start"


def _nothing(*args: Any) -> None:
    return None


@dataclass(frozen=True)
class JournalHooks:
    """What the journal tells its owner (the metrics); called in the event loop thread."""

    written: Callable[[str, int], None] = _nothing  # (release, entries committed)
    dropped: Callable[[int], None] = _nothing
    write_failed: Callable[[], None] = _nothing


class Journal:
    def __init__(self, path: str, config: JournalConfig, hooks: JournalHooks | None = None):
        self.path = path
        self.config = config
        self.hooks = hooks or JournalHooks()
        self.queue: collections.deque[Entry] = collections.deque()
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.error: str | None = None
        self.dropped = 0  # since start
        self._failures = 0
        self._logged_at = -LOG_EVERY
        self._writing: asyncio.Future[Any] | None = None
        self.episode_start = time.time()
        self._episode_dirty = True  # written with the next batch
        self.episode_counts: collections.Counter[str] = collections.Counter()
        self._episode_ended = False  # end_episode was called in this run
        self.replay_lock = asyncio.Lock()  # one replay at a time (proxy.journal.replay)
        self.replaying: tuple[int, int] | None = None  # (entries done, of) while a replay runs

    # -- opening ---------------------------------------------------------------------------
    def open(self) -> None:
        """Open the file (blocking: at start-up). A file that cannot be opened does not stop
        start-up: entries wait in the queue, and each flush tries to open it again."""
        try:
            self._adopt(self._open())
        except (OSError, sqlite3.Error) as exc:
            self._failed(exc)

    def _open(self) -> Opened:
        """Open the file and read its episode (in a worker thread, or at start-up)."""
        conn, moved = store.open_db(self.path)
        start = store.read_meta(conn, EPISODE)
        since = self.episode_start if start is None else start
        counts = conn.execute(
            "SELECT release, count(*) FROM entries WHERE time >= ? GROUP BY release", (since,)
        ).fetchall()
        return conn, moved, start, {str(r): int(n) for r, n in counts}

    def _adopt(self, opened: Opened) -> None:
        """Take an opened file into use (event loop thread). Its episode counts, unless one
        ended while the file could not be opened (the new one has nothing in the file yet)."""
        conn, moved, start, counts = opened
        if moved:
            log.warning("journal %s was corrupt: set aside as %s; a new journal begins",
                        self.path, moved[0][1])  # fmt: skip
        self.conn = conn
        if self._episode_ended:
            return
        if start is not None:
            self.episode_start = start
            self._episode_dirty = False
        self.episode_counts.update(counts)

    # -- the request path ------------------------------------------------------------------
    def append(self, entry: Entry) -> None:
        """Queue ``entry`` for the next batch, or drop and count it when the queue is full."""
        if len(self.queue) >= self.config.queue_size:
            self._drop(1)
            return
        self.queue.append(entry)
        self.episode_counts[entry.release] += 1

    def _drop(self, n: int) -> None:
        if not self.dropped:
            log.error("journal %s: %d entries wait for the writer, the most it keeps; further "
                      "writes of the candidate are not journaled until it catches up",
                      self.path, len(self.queue))  # fmt: skip
        self.dropped += n
        self.hooks.dropped(n)

    # -- episodes --------------------------------------------------------------------------
    def episode(self, release: str) -> dict[str, Any]:
        """What ``release`` wrote since the episode began (for a rollback's answer)."""
        return {
            "release": release,
            "entries": self.episode_counts.get(release, 0),
            "since": self.episode_start,
            "dropped": self.dropped,
            "file": self.path,
        }

    def end_episode(self, now: float) -> None:
        """A rollback or promotion: the next candidate's entries count from ``now``."""
        self.episode_start = now
        self.episode_counts.clear()
        self._episode_dirty = True
        self._episode_ended = True

    # -- writing ---------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write what is queued, in one transaction off the loop; on failure the batch goes
        back to the queue, and the failure is counted, logged and raised."""
        while self._writing is not None:
            await asyncio.wait([self._writing])
        if self.conn is None:
            opened: list[Opened] = []
            await self._in_thread(lambda: opened.append(self._open()))
            self._adopt(opened[0])
        batch = list(self.queue)
        if not batch and not self._episode_dirty:
            return
        self.queue.clear()
        meta = {EPISODE: self.episode_start} if self._episode_dirty else {}
        self._episode_dirty = False
        keep_after = time.time() - self.config.retention_days * store.DAY
        conn = self.conn
        assert conn is not None

        def write() -> None:
            with self.lock:
                store.write_batch(conn, batch, meta, keep_after, self.config.max_entries)

        try:
            await self._in_thread(write)
        except Exception:
            self._put_back(batch)
            self._episode_dirty = self._episode_dirty or bool(meta)
            raise
        self._succeeded(batch)

    async def _in_thread(self, job: Callable[[], None]) -> None:
        future = asyncio.ensure_future(asyncio.to_thread(job))
        self._writing = future
        future.add_done_callback(self._done_writing)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
            raise

    def _done_writing(self, future: asyncio.Future[Any]) -> None:
        self._writing = None
        if not future.cancelled():
            future.exception()  # retrieved: the awaiting flush reports it

    def _put_back(self, batch: list[Entry]) -> None:
        room = max(0, self.config.queue_size - len(self.queue))
        kept = batch[:room]
        self.queue.extendleft(reversed(kept))
        if len(batch) > room:
            self._drop(len(batch) - room)

    def _succeeded(self, batch: list[Entry]) -> None:
        if self._failures:
            log.warning("journal %s: written again after %d failed attempt(s)", self.path,
                        self._failures)  # fmt: skip
        self._failures = 0
        self.error = None
        written = collections.Counter(e.release for e in batch)
        for release, n in written.items():
            self.hooks.written(release, n)

    def _failed(self, exc: BaseException) -> None:
        self.error = f"{exc} ({type(exc).__name__})"
        self._failures += 1
        self.hooks.write_failed()
        now = time.monotonic()
        if self._failures == 1 or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            log.error("journal %s: cannot write: %s; %d entries wait in memory (failure %d in "
                      "a row)", self.path, self.error, len(self.queue),
                      self._failures)  # fmt: skip

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.config.flush_seconds)
            with contextlib.suppress(Exception):
                await self.flush()

    async def close(self) -> None:
        """Write what is queued and close. Cancel ``run`` first; a failure is logged."""
        try:
            await self.flush()
        except Exception:
            log.error("journal %s: %d entries lost at exit: %s", self.path, len(self.queue),
                      self.error)  # fmt: skip
        with self.lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None

    # -- reading and marking (in worker threads, after a flush) ----------------------------
    async def read(self, **filters: Any) -> list[store.Stored]:
        """Entries as ``store.read`` filters them, the queued ones written first;
        ``JournalError`` when the file cannot be written or read now."""
        try:
            await self.flush()
        except Exception as exc:
            raise JournalError(f"journal {self.path} cannot be written now: {exc}") from None
        conn = self.conn
        assert conn is not None  # the flush opened it

        def job() -> list[store.Stored]:
            with self.lock:
                return store.read(conn, **filters)

        return await self._reading(job)

    async def mark(self, ident: int, to: str, status: int | None, error: str | None) -> None:
        """Record that entry ``ident`` was replayed to ``to`` (with its status or error)."""
        conn = self.conn
        assert conn is not None

        def job() -> None:
            with self.lock:
                store.mark_replayed(conn, ident, time.time(), to, status, error)

        await self._reading(job)

    async def _reading(self, job: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(job)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"journal {self.path} cannot be used now: {exc}") from None

    def health(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "ok": self.error is None,
            "error": self.error,
            "queued": len(self.queue),
            "dropped": self.dropped,
            "replaying": None if (r := self.replaying) is None else {"done": r[0], "of": r[1]},
        }
