"""The real ``Upstream``: one keep-alive pool of connections per release.

``Pools.open`` takes the warmest idle connection of the release's pool (LIFO) as the call, or
opens a new one in a task (``PendingCall``), buffering what the exchange writes meanwhile (and
asking it to pause past ``PENDING_LIMIT``). A connection that could not be opened is reported
to the sink as ``up_unavailable``: the release never saw the request, so it may go elsewhere
with what was buffered (``unsent``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from proxy.errors import UpstreamUnavailable
from proxy.http.native import factory
from proxy.http.release import UpstreamConnection
from proxy.http.upstream import Call, Link, Sink

IDLE_SECONDS = 15.0  # idle keep-alive connections older than this are not reused
PENDING_LIMIT = 256 * 1024  # bytes buffered while a connection opens before the sink pauses

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]


class UpstreamPool:
    """Keep-alive connections to one release (LIFO: the warmest connection is reused first)."""

    def __init__(
        self,
        release: str,
        host: str,
        port: int,
        connect_timeout: float,
        max_idle: int,
        max_head_bytes: int = 64 * 1024,
        max_in_flight: int = 1024,
    ) -> None:
        self.name = release
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.max_head_bytes = max_head_bytes  # a longer response head (or trailer) is invalid
        self.max_in_flight = max_in_flight  # more calls at once are refused (circuit breaker)
        self.idle: list[UpstreamConnection] = []
        self.in_flight = 0
        self.closed = False

    def acquire_idle(self) -> UpstreamConnection | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            t = conn.transport
            if t is None or t.is_closing() or now - conn.idle_since > IDLE_SECONDS:
                conn.close()
                continue
            conn.reused = True
            return conn
        return None

    async def connect(self) -> UpstreamConnection:
        """A new connection, or UpstreamUnavailable: the release never saw the request."""
        loop = asyncio.get_running_loop()
        conn = UpstreamConnection(self)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await loop.create_connection(factory(lambda: conn), self.host, self.port)
        except TimeoutError:
            raise UpstreamUnavailable(
                self.name, f"connect to {self.host}:{self.port} timed out"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UpstreamUnavailable(
                self.name, f"connect to {self.host}:{self.port} failed: {reason}"
            ) from None
        conn.reused = False
        return conn

    def release(self, conn: UpstreamConnection, reusable: bool) -> None:
        t = conn.transport
        if (
            reusable
            and not self.closed
            and t is not None
            and not t.is_closing()
            and len(self.idle) < self.max_idle
        ):
            # Reading may have been paused for a slow client when the response ended: an idle
            # connection reads, to see the release close it and to answer the next request.
            if not t.is_reading():
                t.resume_reading()
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        else:
            conn.close()

    def forget(self, conn: UpstreamConnection) -> None:
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> None:
        """Close idle connections; connections serving an exchange finish it first."""
        self.closed = True
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class PendingCall:
    """A call whose connection is still opening: it buffers what the exchange writes (asking
    it to pause past ``PENDING_LIMIT``), then hands everything to the connection."""

    __slots__ = (
        "pool",
        "sink",
        "head_only",
        "conn",
        "pending",
        "pending_size",
        "task",
        "ended",
        "read_paused",
        "asked_pause",
    )

    def __init__(self, pool: UpstreamPool, sink: Sink, head_only: bool, spawn: Spawn) -> None:
        self.pool = pool
        self.sink = sink
        self.head_only = head_only
        self.conn: UpstreamConnection | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.ended = False
        self.read_paused = False  # the client is not taking response bytes
        self.asked_pause = False  # the sink was asked to pause while connecting
        pool.in_flight += 1  # until the connection, which counts itself, takes over
        self.task: asyncio.Task[None] | None = spawn(self._connect())

    @property
    def reused(self) -> bool:
        return False

    @property
    def write_paused(self) -> bool:
        conn = self.conn
        return self.asked_pause if conn is None else conn.write_paused

    async def _connect(self) -> None:
        try:
            conn = await self.pool.connect()
        except UpstreamUnavailable as exc:
            self.task = None
            if not self.ended:
                self.sink.up_unavailable(exc)
            return
        self.task = None
        if self.ended:
            conn.close()
            return
        self.pool.in_flight -= 1
        self.conn = conn
        conn.start(self.sink, self.head_only)
        if self.read_paused:
            conn.pause_reading()
        if self.pending:
            data = b"".join(self.pending)
            self.pending = []
            self.pending_size = 0
            conn.write(data)
        if conn.write_paused:
            if not self.asked_pause:
                self.sink.up_pause_writing()
        elif self.asked_pause:
            self.sink.up_resume_writing()
        self.asked_pause = False

    def write(self, data: bytes) -> None:
        conn = self.conn
        if conn is not None:
            conn.write(data)
            return
        self.pending.append(data)
        self.pending_size += len(data)
        if self.pending_size > PENDING_LIMIT and not self.asked_pause:
            self.asked_pause = True
            self.sink.up_pause_writing()

    def unsent(self) -> bytes:
        data = b"".join(self.pending)
        self.pending = []
        self.pending_size = 0
        return data

    def pause_reading(self) -> None:
        self.read_paused = True
        if self.conn is not None:
            self.conn.pause_reading()

    def resume_reading(self) -> None:
        self.read_paused = False
        if self.conn is not None:
            self.conn.resume_reading()

    def quiet_for(self, now: float) -> float:
        return 0.0 if self.conn is None else self.conn.quiet_for(now)

    def detach(self) -> Link | None:
        conn, self.conn = self.conn, None
        self.ended = True
        return None if conn is None else conn.detach()

    def finish(self) -> None:
        self._end(abort=False)

    def abort(self) -> None:
        self._end(abort=True)

    def _end(self, abort: bool) -> None:
        if self.ended:
            return
        self.ended = True
        if self.task is not None:
            self.task.cancel()
            self.task = None
        conn = self.conn
        if conn is None:
            self.pool.in_flight -= 1
        elif abort:
            conn.abort()
        else:
            conn.finish()


class Pools:
    """The ``Upstream`` of a running Switchback: a pool per release, replaced whole on change.

    A call on a kept-alive connection is the connection itself (no object per request); a
    call that must open one is a ``PendingCall``."""

    def __init__(self, pools: dict[str, UpstreamPool], spawn: Spawn) -> None:
        self.pools = pools
        self.spawn = spawn

    def open(
        self, release: str, sink: Sink, *, head_only: bool, fresh: bool = False
    ) -> Call | None:
        pool = self.pools[release]
        if pool.in_flight >= pool.max_in_flight:
            return None
        conn = None if fresh else pool.acquire_idle()
        if conn is not None:
            conn.start(sink, head_only)
            return conn
        return PendingCall(pool, sink, head_only, self.spawn)

    def in_flight(self, release: str) -> int:
        pool = self.pools.get(release)
        return 0 if pool is None else pool.in_flight
