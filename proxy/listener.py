"""The traffic listener: HTTP/1.1 from clients, parsed by llhttp, on asyncio protocols.

Every path belongs to the app: nothing here answers a request itself except for the proxy's
own refusals (``proxy.errors.Refused``: a malformed request 400, a limit 413/414/431, a
timeout 408, overload 503, the proxy's own failure 500) and a release's failures (502/504 from
``Forward``). Every refusal closes the connection, after the requests before it are answered.

Memory per connection is bounded whatever a client sends: the request head (target, fields,
count) is limited both in what llhttp reports and in what has been read while it is incomplete;
timeouts on an incomplete head, a stalled body, a client that stops reading and a release that
stops sending are all checked by one sweep every 100 ms, so no clock is read per request.

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
from proxy.errors import Refused
from proxy.forward import Forward
from proxy.pipeline import Exchange, Pipeline, first_header
from proxy.routing import TrafficState
from proxy.tunnel import Tunnel, TunnelRegistry
from proxy.upstream import UpstreamConnection, UpstreamPool

log = logging.getLogger("switchback.listener")

SWEEP_SECONDS = 0.1  # resolution of every timeout, and of the loop-lag measurement
SHED_HOLD = 1.0  # once the loop fell behind, new requests are refused for at least this long


class ListenerSettings(msgspec.Struct, frozen=True, kw_only=True):
    response_timeout: float = 30.0  # request sent, no response head: 504
    read_timeout: float = 60.0  # the release silent mid-response (or not reading): cut / 504
    inspect_cap: int = 8 * 1024 * 1024
    served_by: bool = True
    trust_forwarded: bool = False
    keepalive_timeout: float = 75.0  # idle client connections are closed after this
    head_timeout: float = 60.0  # a request head not complete: 408
    body_timeout: float = 60.0  # no request body bytes: 408
    send_timeout: float = 60.0  # a client not taking response bytes: cut off
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    max_target_bytes: int = 8 * 1024
    max_body_bytes: int | None = None
    max_connections: int = 4096
    max_in_flight: int = 1024
    max_loop_lag: float = 0.5
    retry_after: int = 1


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

    def rejected(self, reason: str) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class _Stop(Exception):
    """Raised from a parser callback to stop parsing: the connection is being refused or
    closed, and nothing more it sent may become a request."""


LINGER_QUIET = 2.0  # a refused client that keeps sending is read (and ignored) this long...
LINGER_MAX = 10.0  # ...but no longer than this in all, then closed


class ClientConnection(asyncio.Protocol):
    PAUSE_UPSTREAM = 1  # the release's socket is full
    PAUSE_PIPELINE = 2  # a pipelined request waits for the one before it
    PAUSE_BUFFER = 4  # request bytes buffered while the release connection opens
    PAUSE_UPGRADE = 8  # an upgrade request waits for the release's answer (101 or not)
    PAUSE_REJECTED = 16  # a refused request: nothing more is read from this client

    def __init__(self, server: Listener) -> None:
        self.server = server
        self.ctx = server.ctx
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.peer_bytes = b""
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.parsing: Forward | None = None
        self.active: Forward | None = None
        self.queue: deque[Forward] = deque()
        self.tunnel: Tunnel | None = None
        self.upgrading: Forward | None = None  # the upgrade request awaiting its answer
        self.held = b""  # bytes after an upgrade request's head, until its answer
        self.rejected: Refused | None = None  # a refusal owed once the requests before it end
        self.refusal: Refused | None = None  # raised by a parser callback (a limit)
        self.closing = False  # closing or lingering: nothing more becomes a request
        self.lingering = False  # refused: what the client still sends is read and dropped
        self.paused = 0
        self.write_paused = False  # the client is not taking response bytes fast enough
        self.http10 = False
        self.draining = False
        self.eof = False  # the client shut down its sending side
        self.over_capacity = False  # opened beyond limits.max_connections: answered 503
        self.served = False  # a request head was complete on this connection
        self.in_head = True  # between requests, or a request head is incomplete
        self.head_bytes = 0  # bytes read while the head was incomplete (bounded)
        self.field_bytes = 0  # the current head's target and fields, exactly
        self.body_bytes = 0  # the current request's body so far
        # The sweep's marks (loop time; 0: not observed yet); nothing per request reads a clock.
        self.rx = 0  # reads so far
        self.swept_rx = -1
        self.quiet_since = 0.0  # since when nothing was read
        self.idle_since = 0.0  # since when the connection has no request at all
        self.head_since = 0.0  # since when a head has been incomplete
        self.blocked_since = 0.0  # since when the client has not taken response bytes
        self.linger_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = t = cast(asyncio.Transport, transport)
        peer = t.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else "unix"
        self.peer_bytes = self.peer.encode()
        server = self.server
        self.over_capacity = len(server.connections) >= self.ctx.settings.max_connections
        server.connections.add(self)
        self.draining = server.draining

    def data_received(self, data: bytes) -> None:
        self.rx += 1
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.closing:
            return  # lingering after a refusal: read, and dropped
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade_pending(data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            refusal, self.refusal = self.refusal, None
            if refusal is not None:
                self._refuse(refusal)
            elif not isinstance(exc.__context__, _Stop):
                # A step failed on this request: our bug, not the client's. Say so, log it.
                log.exception("internal error while handling a request from %s", self.peer)
                self._refuse(INTERNAL_ERROR)
            return
        except httptools.HttpParserError as exc:
            self._refuse(Refused(400, "bad_request", str(exc), "malformed"))
            return
        limit = self.ctx.settings.max_head_bytes
        if self.in_head and self.head_bytes > limit and not self.closing:
            self._refuse(_head_too_large(limit))

    def eof_received(self) -> bool | None:
        # A half-closed client may still read the responses it is owed; then it is closed.
        self.eof = True
        return self.active is not None and not self.lingering

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.closing = True
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
        self.blocked_since = 0.0
        fwd = self.active
        if fwd is not None and fwd.up is not None and fwd.up.transport is not None:
            fwd.up.transport.resume_reading()
        if self.tunnel is not None:
            self.tunnel.resume_upstream()

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.closing:
            raise _Stop
        self.url = b""
        self.headers = []
        self.trailers = None
        self.field_bytes = 0
        self.body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        limit = self.ctx.settings.max_target_bytes
        if len(self.url) > limit:
            raise self._limit(
                Refused(414, "uri_too_long", f"request target over {limit} bytes", "target_length")
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        settings = self.ctx.settings
        self.field_bytes += len(name) + len(value) + 4
        if self.field_bytes > settings.max_head_bytes:
            raise self._limit(_head_too_large(settings.max_head_bytes))
        if not self.in_head:  # the trailer section of a chunked body: never header fields
            if self.trailers is None:
                self.trailers = []
            self.trailers.append((name, value))
            return
        headers = self.headers
        headers.append((name, value))
        if len(headers) > settings.max_headers:
            raise self._limit(
                Refused(
                    431,
                    "request_header_fields_too_large",
                    f"more than {settings.max_headers} header fields",
                    "header_count",
                )
            )

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.head_bytes = 0
        self.field_bytes = 0
        self.served = True
        self.idle_since = 0.0
        self.head_since = 0.0
        parser = self.parser
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":  # llhttp reports it as an upgrade next: answered with a 400
            return
        self.http10 = parser.get_http_version() == "1.0"
        refusal = self._admission()
        if refusal is not None:
            raise self._limit(refusal)
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
        self.body_bytes += len(body)
        limit = self.ctx.settings.max_body_bytes
        if limit is not None and self.body_bytes > limit:
            raise self._limit(_body_too_large(limit))
        if self.parsing is not None:
            self.parsing.request_chunk(body)

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        fwd, self.parsing = self.parsing, None
        if fwd is not None:
            fwd.request_end(self.trailers)

    # -- admission -------------------------------------------------------------------------
    def _admission(self) -> Refused | None:
        """Whether a complete request head may go on: the connection cap, load shedding and
        an announced body over the limit are answered before any release is chosen."""
        settings = self.ctx.settings
        if self.over_capacity:
            return Refused(
                503,
                "overloaded",
                f"more than {settings.max_connections} client connections",
                "max_connections",
                retry_after=settings.retry_after,
            )
        if self.server.shedding:
            return Refused(
                503,
                "overloaded",
                "the proxy is overloaded (its event loop is falling behind)",
                "loop_lag",
                retry_after=settings.retry_after,
            )
        limit = settings.max_body_bytes
        if limit is not None:
            length = first_header(self.headers, b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                return _body_too_large(limit)
        return None

    def _limit(self, refusal: Refused) -> Refused:
        """Keep ``refusal`` for ``data_received`` (httptools wraps what a callback raises)."""
        self.refusal = refusal
        return refusal

    # -- called by Forward -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def abort(self) -> None:
        self.closing = True
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
            # The client may still be sending (a body the release did not wait for).
            self._close(linger=not fwd.request_done or self.rejected is not None)
            return
        if self.queue:
            nxt = self.queue.popleft()
            self.active = nxt
            if not self.queue:
                self.resume_reading(self.PAUSE_PIPELINE)
            nxt.begin()
            return
        if self.rejected is not None:  # the requests before the refused one are answered
            self._refuse_now(self.rejected)
            return
        self.resume_reading(self.PAUSE_PIPELINE | self.PAUSE_UPGRADE)
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
            self._refuse(Refused(400, "bad_request", "CONNECT is not supported", "malformed"))
            return
        self.held = rest
        self.pause_reading(self.PAUSE_UPGRADE)

    def _refuse(self, refusal: Refused) -> None:
        """A request Switchback answers itself: the requests before it are answered, then the
        refusal, then the connection closes (after reading what the client still sends, for
        a while, so that it reads the answer rather than a reset).

        When the head was fine but the body is not, that request may already be on its way
        to the release: ``Forward.refuse`` cuts it off there (the release must not take a
        truncated body for a complete one) and answers itself."""
        if refusal.status in (400, 408, 413, 414, 431):
            log.info("refused a request from %s: %d %s", self.peer, refusal.status, refusal.detail)
        self.rejected = refusal
        self.closing = True
        self.pause_reading(self.PAUSE_REJECTED)
        fwd, self.parsing = self.parsing, None
        if fwd is not None:
            if fwd is self.active:
                fwd.refuse(refusal)
                return
            if fwd in self.queue:
                self.queue.remove(fwd)
        if self.active is None:
            self._refuse_now(refusal)

    def _refuse_now(self, refusal: Refused) -> None:
        if refusal.reason:
            self.ctx.rejected(refusal.reason)
        self.write(http1.refusal_response(refusal))
        self._close(linger=True)

    def _close(self, linger: bool) -> None:
        """Close after what was written; with ``linger``, first read and drop what the client
        still sends (nginx's lingering close), so that its last request's answer is not lost
        to a reset of unread data."""
        self.closing = True
        t = self.transport
        if t is None or t.is_closing():
            return
        if not linger or self.eof or not t.can_write_eof():
            t.close()
            return
        t.write_eof()
        self.lingering = True
        self.paused = 0
        t.resume_reading()

    def sweep(self, now: float, settings: ListenerSettings) -> None:
        """Periodic check of every timeout of this connection (see ``Listener._sweeper``)."""
        if self.rx != self.swept_rx:
            self.swept_rx = self.rx
            self.quiet_since = now
        quiet = now - self.quiet_since
        if self.lingering:
            if not self.linger_since:
                self.linger_since = now
            if quiet > LINGER_QUIET or now - self.linger_since > LINGER_MAX:
                self.abort()
            return
        if self.tunnel is not None or self.closing:
            return
        if self.write_paused:
            if not self.blocked_since:
                self.blocked_since = now
            elif now - self.blocked_since > settings.send_timeout:
                self.ctx.rejected("send_timeout")
                self.abort()  # the exchange in flight ends as client_closed
                return
        fwd = self.active
        if fwd is not None:
            fwd.sweep(now, quiet, settings)
        elif self.head_bytes:  # part of a request head has arrived
            if not self.head_since:
                self.head_since = now
            elif now - self.head_since > settings.head_timeout:
                timeout = settings.head_timeout
                detail = f"the request head was not complete within {timeout:g} s"
                self._refuse(Refused(408, "request_timeout", detail, "head_timeout"))
        else:
            if not self.idle_since:
                self.idle_since = now
            # A new connection gets the head timeout for its first request, as in nginx.
            limit = settings.keepalive_timeout if self.served else settings.head_timeout
            if now - self.idle_since > limit:
                self._close(linger=False)

    def drain(self) -> None:
        """Stop keep-alive: close now if idle, else after the response in flight. A tunnel
        never ends by itself: its client is told to reconnect (1012) now."""
        self.draining = True
        if self.tunnel is not None:
            self.tunnel.close_for_restart()
        elif self.active is None and self.transport is not None:
            self.transport.close()


INTERNAL_ERROR = Refused(500, "internal_error", "the proxy failed on this request")


def _head_too_large(limit: int) -> Refused:
    return Refused(
        431, "request_header_fields_too_large", f"request head over {limit} bytes", "head_size"
    )


def _body_too_large(limit: int) -> Refused:
    return Refused(413, "content_too_large", f"request body over {limit} bytes", "body_size")


class Listener:
    """The traffic socket and its connections; ``drain`` implements the graceful stop."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.connections: set[ClientConnection] = set()
        self.server: asyncio.Server | None = None
        self.draining = False
        self._idle_waiter: asyncio.Future[None] | None = None
        # Load shedding: how late the last sweep ran, and whether new requests are refused.
        self.loop_lag = 0.0
        self.shedding = False
        self._shed_until = 0.0

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
        """Every ``SWEEP_SECONDS``: measure how late the loop runs (load shedding), then check
        every connection's timeouts. A failure on one connection is logged and that
        connection cut; the sweep itself never stops."""
        loop = self.ctx.loop
        due = loop.time() + SWEEP_SECONDS
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            settings = self.ctx.settings
            self.measure_lag(now - due, now, settings.max_loop_lag)
            due = now + SWEEP_SECONDS
            for conn in list(self.connections):
                try:
                    conn.sweep(now, settings)
                except Exception:
                    log.exception("sweep failed on a connection from %s; closing it", conn.peer)
                    conn.abort()

    def measure_lag(self, lag: float, now: float, limit: float) -> None:
        """A loop running ``lag`` seconds late sheds new requests (503) for at least
        ``SHED_HOLD`` seconds, so that what is already in flight can finish."""
        self.loop_lag = max(0.0, lag)
        if lag > limit:
            if not self.shedding:
                log.warning("event loop %.0f ms behind: refusing new requests", lag * 1000)
            self._shed_until = now + SHED_HOLD
        self.shedding = now < self._shed_until

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
