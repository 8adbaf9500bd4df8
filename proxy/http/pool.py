"""The real ``Upstream``: one keep-alive pool of connections per release.

``Pools.open`` starts a ``PooledCall``: it takes the warmest idle connection of the release's
pool (LIFO), or opens a new one in a task, buffering what the exchange writes meanwhile (and
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
from proxy.http.release import UpstreamConnection
from proxy.http.upstream import Link, Sink

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
    ) -> None:
        self.name = release
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self.max_head_bytes = max_head_bytes  # a longer response head (or trailer) is invalid
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
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, proto = await loop.create_connection(
                    lambda: UpstreamConnection(self), self.host, self.port
                )
        except TimeoutError:
            raise UpstreamUnavailable(
                self.name, f"connect to {self.host}:{self.port} timed out"
            ) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UpstreamUnavailable(
                self.name, f"connect to {self.host}:{self.port} failed: {reason}"
            ) from None
        proto.reused = False
        return proto

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


class PooledCall:
    """One request's lease on a connection of ``pool`` (see ``proxy.http.upstream.Call``)."""

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

    def __init__(
        self, pool: UpstreamPool, sink: Sink, head_only: bool, fresh: bool, spawn: Spawn
    ) -> None:
        self.pool = pool
        self.sink = sink
        self.head_only = head_only
        self.conn: UpstreamConnection | None = None
        self.pending: list[bytes] = []  # written while the connection opens
        self.pending_size = 0
        self.task: asyncio.Task[None] | None = None
        self.ended = False
        self.read_paused = False  # the client is not taking response bytes
        self.asked_pause = False  # the sink was asked to pause while connecting
        pool.in_flight += 1
        conn = None if fresh else pool.acquire_idle()
        if conn is not None:
            self._attach(conn)
        else:
            self.task = spawn(self._connect())

    @property
    def reused(self) -> bool:
        return self.conn is not None and self.conn.reused

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
        self._attach(conn)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.conn = conn
        conn.start(self.sink, self.head_only)
        if self.read_paused and conn.transport is not None:
            conn.transport.pause_reading()
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
        conn = self.conn
        if conn is not None and conn.transport is not None:
            conn.transport.pause_reading()

    def resume_reading(self) -> None:
        self.read_paused = False
        conn = self.conn
        if conn is not None and conn.transport is not None:
            conn.transport.resume_reading()

    def quiet_for(self, now: float) -> float:
        conn = self.conn
        return 0.0 if conn is None else conn.quiet_for(now)

    def detach(self) -> Link | None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.sink = None
        self._end()
        return conn

    def finish(self) -> None:
        self._end()

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.pool.in_flight -= 1


class Pools:
    """The ``Upstream`` of a running Switchback: a pool per release, replaced whole on change."""

    def __init__(self, pools: dict[str, UpstreamPool], spawn: Spawn) -> None:
        self.pools = pools
        self.spawn = spawn

    def open(self, release: str, sink: Sink, *, head_only: bool, fresh: bool = False) -> PooledCall:
        return PooledCall(self.pools[release], sink, head_only, fresh, self.spawn)

    def in_flight(self, release: str) -> int:
        pool = self.pools.get(release)
        return 0 if pool is None else pool.in_flight
