"""One client connection: HTTP/1.1 from a client, parsed by llhttp, on an asyncio protocol.

Requests are answered in order: a pipelined request waits (reading pauses) until the one
before it has been answered. Reading from the client also pauses while the release cannot
take request bytes fast enough, and reading from the release pauses while the client cannot
take response bytes, so memory stays flat for any body size.

Memory per connection is bounded whatever a client sends: the request head (target, fields,
count) is limited both in what llhttp reports and in what has been read while it is incomplete;
timeouts on an incomplete head, a stalled body, a client that stops reading and a release that
stops sending are all checked by the listener's sweep every 100 ms, so no clock is read per
request. Refusals (``proxy.errors.Refused``) are answered after the requests before them,
then the connection closes with a lingering read (``_close``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol, cast

import httptools

from proxy import http1
from proxy.context import Context, Settings
from proxy.errors import Refused
from proxy.forward import Forward
from proxy.pipeline import Exchange, first_header
from proxy.tunnel import Tunnel
from proxy.upstream import Link

log = logging.getLogger("switchback.listener")


class Server(Protocol):
    """What a connection needs of its listener (``proxy.listener.Listener``)."""

    ctx: Context
    connections: set[ClientConnection]
    draining: bool
    shedding: bool

    def connection_closed(self) -> None: ...


class _Stop(Exception):
    """Raised from a parser callback to stop parsing: the connection is being refused or
    closed, and nothing more it sent may become a request."""


LINGER_QUIET = 2.0  # a refused client that keeps sending is read (and ignored) this long...
LINGER_MAX = 10.0  # ...but no longer than this in all, then closed


class ClientConnection(asyncio.Protocol):
    PAUSE_UPSTREAM = 1  # the release's socket is full
    PAUSE_PIPELINE = 2  # a pipelined request waits for the one before it
    PAUSE_UPGRADE = 8  # an upgrade request waits for the release's answer (101 or not)
    PAUSE_REJECTED = 16  # a refused request: nothing more is read from this client

    def __init__(self, server: Server) -> None:
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
        if self.active is not None:
            self.active.pause_upstream()
        if self.tunnel is not None:
            self.tunnel.pause_upstream()

    def resume_writing(self) -> None:
        self.write_paused = False
        self.blocked_since = 0.0
        if self.active is not None:
            self.active.resume_upstream()
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
        fwd = Forward(self, self.ctx, ex, parser.should_keep_alive(), chunked, upgrade)
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

    def start_tunnel(self, release: str, link: Link, rest: bytes) -> None:
        """The release accepted an upgrade (101): relay raw bytes both ways from now on."""
        self.active = None
        self.upgrading = None
        held, self.held = self.held, b""
        tunnel = Tunnel(self, link, release, self.ctx.tunnels)
        self.tunnel = tunnel
        link.tunnel = tunnel.upstream_side()
        if self.write_paused:
            tunnel.pause_upstream()
        if rest:
            tunnel.from_upstream(rest)
        if held:
            tunnel.from_client(held)
        self.resume_reading(self.PAUSE_PIPELINE | self.PAUSE_UPSTREAM | self.PAUSE_UPGRADE)

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

    def sweep(self, now: float, settings: Settings) -> None:
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
