"""The traffic listener: HTTP/1.1 from clients, parsed by llhttp, on asyncio protocols.

Every path belongs to the app: nothing here answers a request itself except for the proxy's
own failures (a malformed request: 400; a release that failed: 502/504 from ``Forward``).

One ``ClientConnection`` per client socket. Requests are answered in order: a pipelined request
waits (reading pauses) until the one before it has been answered. Reading from the client also
pauses while the release cannot take request bytes fast enough, and reading from the release
pauses while the client cannot take response bytes, so memory stays flat for any body size.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

import httptools
import msgspec

from proxy import http1
from proxy.forward import Forward
from proxy.pipeline import Exchange, Pipeline
from proxy.routing import TrafficState
from proxy.tunnel import Tunnel, TunnelRegistry
from proxy.upstream import UpstreamConnection, UpstreamPool

log = logging.getLogger("switchback.listener")

SWEEP_SECONDS = 0.1  # resolution of response timeouts and keep-alive expiry


class ListenerSettings(msgspec.Struct, frozen=True, kw_only=True):
    response_timeout: float = 30.0
    inspect_cap: int = 8 * 1024 * 1024
    served_by: bool = True
    trust_forwarded: bool = False
    keepalive_timeout: float = 75.0  # idle client connections are closed after this


class Context(Protocol):
    """What the listener needs from the runtime; attributes are replaced whole on change."""

    loop: asyncio.AbstractEventLoop
    pipeline: Pipeline
    pools: dict[str, UpstreamPool]
    settings: ListenerSettings
    tunnels: TunnelRegistry

    @property
    def traffic(self) -> TrafficState: ...

    def upstream_error(self, release: str, kind: str) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class ClientConnection(asyncio.Protocol):
    PAUSE_UPSTREAM = 1  # the release's socket is full
    PAUSE_PIPELINE = 2  # a pipelined request waits for the one before it
    PAUSE_BUFFER = 4  # request bytes buffered while the release connection opens
    PAUSE_UPGRADE = 8  # an upgrade request waits for the release's answer (101 or not)
    PAUSE_REJECTED = 16  # a malformed request: nothing more is read from this client

    def __init__(self, server: Listener) -> None:
        self.server = server
        self.ctx = server.ctx
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.peer_bytes = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.parsing: Forward | None = None
        self.active: Forward | None = None
        self.queue: deque[Forward] = deque()
        self.tunnel: Tunnel | None = None
        self.upgrading: Forward | None = None  # the upgrade request awaiting its answer
        self.held = b""  # bytes after an upgrade request's head, until its answer
        self.rejected: str | None = None  # why a malformed request is owed a 400
        self.reject_status = 400  # 500 when the proxy itself failed on the request
        self.paused = 0
        self.write_paused = False  # the client is not taking response bytes fast enough
        self.http10 = False
        self.draining = False
        self.eof = False  # the client shut down its sending side
        self.idle_since = 0.0  # loop time the connection became idle; 0: busy

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        peer = t.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "unix"
        self.peer_bytes = self.peer.encode()
        self.server.connections.add(self)
        self.draining = self.server.draining
        self.idle_since = self.ctx.loop.time()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.rejected is not None:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade_pending(data[exc.args[0] :])
        except httptools.HttpParserCallbackError:
            # A step failed on this request: our bug, not the client's. Say so, log it.
            log.exception("internal error while handling a request from %s", self.peer)
            self._bad_request("the proxy failed on this request", status=500)
        except httptools.HttpParserError as exc:
            self._bad_request(str(exc))

    def eof_received(self) -> bool | None:
        # A half-closed client may still read the responses it is owed; then it is closed.
        self.eof = True
        return self.active is not None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.tunnel is not None:
            self.tunnel.client_lost()
        for fwd in (self.active, *self.queue):
            if fwd is not None:
                fwd.client_lost()
        self.active = None
        self.queue.clear()
        self.server.connection_closed()

    def pause_writing(self) -> None:
        self.write_paused = True
        fwd = self.active
        if fwd is not None and fwd.up is not None and fwd.up.transport is not None:
            fwd.up.transport.pause_reading()
        if self.tunnel is not None:
            self.tunnel.pause_upstream()

    def resume_writing(self) -> None:
        self.write_paused = False
        fwd = self.active
        if fwd is not None and fwd.up is not None and fwd.up.transport is not None:
            fwd.up.transport.resume_reading()
        if self.tunnel is not None:
            self.tunnel.resume_upstream()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        # Still "idle" for the sweep until the head is complete: a head that never completes
        # (a stalled or trickling client) does not hold the connection past the timeout.
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.idle_since = 0.0
        parser = self.parser
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":  # llhttp reports it as an upgrade next: answered with a 400
            return
        self.http10 = parser.get_http_version() == "1.0"
        ex = Exchange(method, self.url, self.headers, self.peer)
        chunked = False
        upgrade: bytes | None = None
        for name, value in self.headers:
            lname = name.lower()
            if lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"upgrade" and parser.should_upgrade():
                upgrade = value
        fwd = Forward(self, ex, parser.should_keep_alive(), chunked, upgrade)
        self.parsing = fwd
        if upgrade is not None:
            self.upgrading = fwd
        if self.active is None:
            self.active = fwd
            fwd.begin()
        else:
            self.queue.append(fwd)
            self.pause_reading(self.PAUSE_PIPELINE)

    def on_body(self, body: bytes) -> None:
        if self.parsing is not None:
            self.parsing.request_chunk(body)

    def on_message_complete(self) -> None:
        fwd, self.parsing = self.parsing, None
        if fwd is not None:
            fwd.request_end()

    # -- called by Forward -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def exchange_finished(self, fwd: Forward, reusable: bool) -> None:
        if self.active is not fwd:
            return
        self.active = None
        held = b""
        if fwd is self.upgrading:  # the release declined the upgrade: plain HTTP goes on
            self.upgrading = None
            held, self.held = self.held, b""
        t = self.transport
        if (
            not reusable
            or self.draining
            or (self.eof and not self.queue)
            or t is None
            or t.is_closing()  # the client is gone: what it queued must not reach a release
        ):
            self.queue.clear()
            if t is not None:
                t.close()
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.active = nxt
            if not self.queue:
                self.resume_reading(self.PAUSE_PIPELINE)
            nxt.begin()
            return
        if self.rejected is not None:  # the requests before the malformed one are answered
            self._reject_now(self.rejected, self.reject_status)
            return
        self.resume_reading(self.PAUSE_PIPELINE | self.PAUSE_UPGRADE)
        self.idle_since = self.ctx.loop.time()
        if held:  # what the client sent after the upgrade request, parsed as HTTP now
            self.data_received(held)

    def start_tunnel(self, fwd: Forward, up: UpstreamConnection, rest: bytes) -> None:
        """The release accepted an upgrade (101): relay raw bytes both ways from now on."""
        self.active = None
        self.upgrading = None
        held, self.held = self.held, b""
        tunnel = Tunnel(self, up, fwd.ex.release, self.ctx.tunnels)
        self.tunnel = tunnel
        up.tunnel = tunnel.upstream_side()
        if self.write_paused:
            tunnel.pause_upstream()
        if rest:
            tunnel.from_upstream(rest)
        if held:
            tunnel.from_client(held)
        self.resume_reading(
            self.PAUSE_BUFFER | self.PAUSE_PIPELINE | self.PAUSE_UPSTREAM | self.PAUSE_UPGRADE
        )

    # -- internals -------------------------------------------------------------------------
    def _upgrade_pending(self, rest: bytes) -> None:
        """Bytes after an upgrade request's head are held, and reading pauses, until the
        release answers: they go to the tunnel after a 101, else to the parser as HTTP."""
        if self.upgrading is None:  # CONNECT: there is nothing behind a reverse proxy to reach
            self._bad_request("CONNECT is not supported")
            return
        self.held = rest
        self.pause_reading(self.PAUSE_UPGRADE)

    def _bad_request(self, detail: str, status: int = 400) -> None:
        """A malformed request: the requests before it are answered, then a 400, then close.

        When the head was fine but the body is not, that request may already be on its way
        to the release: ``Forward.reject`` cuts it off there (the release must not take a
        truncated body for a complete one) and answers the 400 itself."""
        if status == 400:
            log.info("malformed request from %s: %s", self.peer, detail)
        self.rejected = detail
        self.reject_status = status
        self.pause_reading(self.PAUSE_REJECTED)
        fwd, self.parsing = self.parsing, None
        if fwd is not None:
            if fwd is self.active:
                fwd.reject(detail, status)
                return
            if fwd in self.queue:
                self.queue.remove(fwd)
        if self.active is None:
            self._reject_now(detail, status)

    def _reject_now(self, detail: str, status: int = 400) -> None:
        error = "bad_request" if status == 400 else "internal_error"
        self.write(http1.error_response(status, error, None, detail, close=True))
        if self.transport is not None:
            self.transport.close()

    def sweep(self, now: float, keepalive: float) -> None:
        """Periodic check: a response head overdue (504), or a keep-alive connection idle
        for too long (closed)."""
        fwd = self.active
        if fwd is not None:
            if fwd.deadline and now >= fwd.deadline:
                fwd.timed_out()
        elif self.idle_since and now - self.idle_since > keepalive and self.tunnel is None:
            if self.transport is not None:
                self.transport.close()

    def drain(self) -> None:
        """Stop keep-alive: close now if idle, else after the response in flight. A tunnel
        never ends by itself: its client is told to reconnect (1012) now."""
        self.draining = True
        if self.tunnel is not None:
            self.tunnel.close_for_restart()
        elif self.active is None and self.transport is not None:
            self.transport.close()


class Listener:
    """The traffic socket and its connections; ``drain`` implements the graceful stop."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.connections: set[ClientConnection] = set()
        self.server: asyncio.Server | None = None
        self.draining = False
        self._idle_waiter: asyncio.Future[None] | None = None

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        factory: Callable[[], ClientConnection] = lambda: ClientConnection(self)  # noqa: E731
        loop = self.ctx.loop
        if sock is not None:
            self.server = await loop.create_server(factory, sock=sock, backlog=1024)
        else:
            self.server = await loop.create_server(
                factory, host, port, backlog=1024, reuse_address=True
            )
        self.ctx.spawn(self._sweeper())

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = self.ctx.loop.time()
            keepalive = self.ctx.settings.keepalive_timeout
            for conn in list(self.connections):
                conn.sweep(now, keepalive)

    @property
    def port(self) -> int:
        assert self.server is not None  # noqa: S101 - only called after start()
        return int(self.server.sockets[0].getsockname()[1])

    def in_flight(self) -> int:
        return sum(1 for c in self.connections if c.active is not None or c.tunnel is not None)

    def connection_closed(self) -> None:
        if self._idle_waiter is not None and not self.connections:
            if not self._idle_waiter.done():
                self._idle_waiter.set_result(None)

    async def drain(self, timeout: float) -> int:
        """Stop accepting, let in-flight exchanges finish (up to ``timeout``), then close the
        rest. Returns the number of connections that had to be cut."""
        self.draining = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.drain()
        if self.connections:
            self._idle_waiter = self.ctx.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._idle_waiter), timeout)
            except TimeoutError:
                pass
        cut = len(self.connections)
        for conn in list(self.connections):
            conn.abort()
        return cut
