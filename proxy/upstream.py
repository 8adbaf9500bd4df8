"""Connections to a release: one keep-alive pool per release, HTTP/1.1 parsed by llhttp.

An ``UpstreamConnection`` serves one exchange at a time. While it does, its ``sink`` (the
listener's ``Forward``) receives the response as events: ``up_interim`` (1xx), ``up_head``,
``up_body``, ``up_complete``, ``up_upgrade`` (101: the bytes after the head) and ``up_lost``,
and ``up_flush`` after each read from the release has been parsed.
When the exchange ends the connection goes back to the pool if both sides allow keep-alive.

Two things llhttp (through httptools) cannot be told, handled here: a response to HEAD has no
body whatever its Content-Length says, so the exchange completes at the head and the connection
is not reused; and a body delimited by the connection closing completes on EOF.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol, cast

import httptools

from proxy.errors import UpstreamUnavailable

log = logging.getLogger("switchback.upstream")

IDLE_SECONDS = 15.0  # idle keep-alive connections older than this are not reused


class Sink(Protocol):
    request_done: bool

    def up_interim(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]
    ) -> None: ...
    def up_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None: ...
    def up_body(self, data: bytes) -> None: ...
    def up_complete(self) -> None: ...
    def up_upgrade(self, rest: bytes) -> None: ...
    def up_lost(self, got_bytes: bool) -> None: ...
    def up_flush(self) -> None: ...
    def up_pause_writing(self) -> None: ...
    def up_resume_writing(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sink: Sink | None = None
        self.tunnel: asyncio.Protocol | None = None  # set once a 101 turned it into a tunnel
        self.head_only = False  # the request was HEAD
        self.got_bytes = False  # any response byte for the current exchange
        self.eof_body = False  # the current body ends when the connection closes
        self.interim = False
        self.upgraded = False
        self.reused = False
        self.write_paused = False  # the release is not taking request bytes fast enough
        self.idle_since = 0.0
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.data_received(data)
            return
        sink = self.sink
        if sink is None:  # an idle connection must not speak: drop it
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
            current = self.sink
            if current is not None:
                current.up_flush()  # what this read produced goes out now, in one write
        except httptools.HttpParserUpgrade as exc:
            if self.sink is not None:
                self.sink.up_upgrade(data[exc.args[0] :])
        except httptools.HttpParserCallbackError:
            log.exception("bug while handling a response from %s", self.pool.name)
            self.sink = None
            self.close()
            sink.up_lost(True)
        except httptools.HttpParserError:
            self.sink = None
            self.close()
            sink.up_lost(True)

    def eof_received(self) -> bool | None:
        return False  # close the transport: half-open upstream connections are not reused

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        if self.tunnel is not None:
            self.tunnel.connection_lost(exc)
            return
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if self.eof_body:  # the body was delimited by the close: it is complete
            sink.up_complete()
        else:
            sink.up_lost(self.got_bytes)

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.tunnel is not None:
            self.tunnel.pause_writing()
        elif self.sink is not None:
            self.sink.up_pause_writing()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.tunnel is not None:
            self.tunnel.resume_writing()
        elif self.sink is not None:
            self.sink.up_resume_writing()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []
        self.reason = b""

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        sink = self.sink
        if sink is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True
            sink.up_interim(status, self.reason, self.headers)
            return
        if status == 101:
            self.upgraded = True  # llhttp reports the message complete, then the upgrade
        elif not self.head_only and status not in (204, 304):
            self.eof_body = not _framed(self.headers)
        sink.up_head(status, self.reason, self.headers)
        if self.head_only and self.sink is sink:
            # No body follows a HEAD response; llhttp would wait for Content-Length bytes.
            self.sink = None
            self.close()
            sink.up_complete()

    def on_body(self, body: bytes) -> None:
        if self.sink is not None:
            self.sink.up_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.upgraded:
            return
        sink, self.sink = self.sink, None
        if sink is None:
            return
        self.eof_body = False
        reusable = sink.request_done and self.parser.should_keep_alive()
        self.pool.release(self, reusable)
        sink.up_complete()

    # -- used by the pool and the listener ---------------------------------------------------
    def start(self, sink: Sink, head_only: bool) -> None:
        self.sink = sink
        self.head_only = head_only
        self.got_bytes = False
        self.eof_body = False
        self.interim = False

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.sink = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.sink = None
        if self.transport is not None:
            self.transport.abort()


def _framed(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            return True
        if lname == b"transfer-encoding" and b"chunked" in value.lower():
            return True
    return False


class UpstreamPool:
    """Keep-alive connections to one release (LIFO: the warmest connection is reused first)."""

    def __init__(
        self, release: str, host: str, port: int, connect_timeout: float, max_idle: int
    ) -> None:
        self.name = release
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
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
