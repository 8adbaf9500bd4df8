"""One client connection: HTTP/1.1 from a client, parsed by llhttp, on an asyncio protocol.

Requests are answered in order: a pipelined request waits (reading pauses) until the one
before it has been answered. Reading from the client also pauses while the release cannot
take request bytes fast enough, and reading from the release pauses while the client cannot
take response bytes, so memory stays flat for any body size.

Memory per connection is bounded whatever a client sends: the request head (target, fields,
count) is limited both in what llhttp reports and in what has been read while it is incomplete,
and so is what is read after it that is not body (chunk framing and extensions, trailer fields);
timeouts on an incomplete head, a stalled body, a client that stops reading and a release that
stops sending are all checked by the listener's sweep every 100 ms, so no clock is read per
request. Refusals (``proxy.errors.Refused``) are answered after the requests before them,
then the connection closes with a lingering read (``_close``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

import httptools

from proxy.errors import Refused
from proxy.http import http1, refusals
from proxy.http.forward import Forward
from proxy.http.guard import Guard, Server
from proxy.http.tunnel import Tunnel
from proxy.http.upstream import Link
from proxy.pipeline import Exchange

log = logging.getLogger("switchback.listener")


class _Stop(Exception):
    """Raised from a parser callback to stop parsing: the connection is being refused or
    closed, and nothing more it sent may become a request. Control flow caught within this
    module: not in ``proxy.errors``' tree."""


class ClientConnection(Guard):  # an asyncio protocol (no base: see ``proxy.http.native``)
    __slots__ = (
        "server",
        "ctx",
        "parser",
        "transport",
        "peer",
        "peer_bytes",
        "url",
        "headers",
        "trailers",
        "active",
        "queue",
        "tunnel",
        "upgrading",
        "held",
        "refusal",
        "write_paused",
        "http10",
        "draining",
        "eof",
        "over_capacity",
        "served",
        "in_head",
        "head_bytes",
        "field_bytes",
        "body_bytes",
        "body_rx",
        "tail_bytes",
        "ended_rx",
        "measure_head",
    )

    PAUSE_UPSTREAM = 1  # the release's socket is full
    PAUSE_PIPELINE = 2  # a pipelined request waits for the one before it
    PAUSE_UPGRADE = 8  # an upgrade request waits for the release's answer (101 or not)

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
        self.body_rx = -1  # the read that last carried body bytes
        # Read since the head without a body byte (chunk framing and extensions, trailer
        # fields): llhttp keeps an unfinished field to itself, so this is bounded as a head.
        self.tail_bytes = 0
        self.ended_rx = -1  # the read in which the last request ended
        # The current head began in the read that ended the request before it, after that
        # request's bytes: ``head_bytes`` has not counted its share of that read.
        self.measure_head = False
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
        head = self.in_head  # whether this read began before the current head was complete
        if head:
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
                self._refuse(refusals.INTERNAL_ERROR)
            return
        except httptools.HttpParserError as exc:
            self._refuse(refusals.malformed(str(exc)))
            return
        if not head and not self.closing:  # a read after the head: body, framing, trailers
            if self.in_head or self.body_rx == self.rx:  # the request ended, or body came
                self.tail_bytes = 0
            else:
                self.tail_bytes += len(data)
                limit = self.ctx.settings.max_head_bytes
                if self.tail_bytes > limit:
                    self._refuse(refusals.head_too_large(limit))
        elif self.head_bytes and self.in_head and not self.closing:
            limit = self.ctx.settings.max_head_bytes
            if self.head_bytes > limit:
                self._refuse(refusals.head_too_large(limit))

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
        if self.rx == self.ended_rx:
            self.measure_head = True
            self.head_bytes = 1  # not idle, for the sweep's head timeout: this head has begun
        else:
            self.measure_head = False
        self.url = b""
        self.headers = []
        self.trailers = None
        self.field_bytes = 0
        self.body_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.url += url
        limit = self.ctx.settings.max_target_bytes
        if len(self.url) > limit:
            raise self._limit(refusals.target_too_long(limit))

    def on_header(self, name: bytes, value: bytes) -> None:
        # The head's size and field count are checked once it is complete (and, while it is
        # not, by the bytes read: ``data_received``); here only what must be, per field.
        if self.in_head:
            self.headers.append((name, value))
            return
        # The trailer section of a chunked body: never header fields, bounded as a head.
        limit = self.ctx.settings.max_head_bytes
        self.field_bytes += len(name) + len(value) + 4
        if self.field_bytes > limit:
            raise self._limit(refusals.head_too_large(limit))
        if self.trailers is None:
            self.trailers = []
        self.trailers.append((name, value))
        if len(self.trailers) > self.ctx.settings.max_headers:
            raise self._limit(refusals.too_many_headers(self.ctx.settings.max_headers))

    def _check_head(self) -> None:
        """The complete head against the limits: the field count, and its size when what was
        read while it came (an upper bound of its size) is over the limit, or when that bound
        is not known (the head began in the middle of a read: a pipelined request)."""
        settings = self.ctx.settings
        headers = self.headers
        if len(headers) > settings.max_headers:
            raise self._limit(refusals.too_many_headers(settings.max_headers))
        limit = settings.max_head_bytes
        if self.head_bytes > limit or self.measure_head:
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in headers)
            if size > limit:
                raise self._limit(refusals.head_too_large(limit))

    def on_headers_complete(self) -> None:
        self._check_head()
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
        if (
            self.over_capacity
            or self.server.shedding
            or self.ctx.settings.max_body_bytes is not None
        ):
            refusal = self._admission()
            if refusal is not None:
                raise self._limit(refusal)
        ex = Exchange(method, self.url, self.headers, self.peer)
        chunked = False
        upgrade: bytes | None = None
        hosts = 0
        for name, value in self.headers:
            if len(name) not in {4, 7, 17}:  # most fields: no lower-cased copy for them
                continue
            lower = name.lower()
            if lower == b"host":
                hosts += 1
            elif lower == b"transfer-encoding":
                if chunked or value.strip(b" \t").lower() != b"chunked":
                    raise self._limit(refusals.transfer_codings(self.headers))
                chunked = True
            elif lower == b"upgrade" and parser.should_upgrade():
                if http1.body_announced(self.headers):
                    # llhttp would take the body for the new protocol's bytes, and parse
                    # them as requests if the release declines: no such upgrade, then.
                    detail = "an upgrade request must not have a body"
                    raise self._limit(refusals.malformed(detail))
                upgrade = value
        if hosts != 1 and (hosts or not self.http10):  # RFC 9112 section 3.2
            raise self._limit(refusals.malformed("a request needs exactly one Host field"))
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
        self.body_rx = self.rx
        self.body_bytes += len(body)
        limit = self.ctx.settings.max_body_bytes
        if limit is not None and self.body_bytes > limit:
            raise self._limit(refusals.body_too_large(limit))
        if self.parsing is not None:
            self.parsing.request_chunk(body)

    def on_message_complete(self) -> None:
        self.in_head = True
        self.head_bytes = 0
        self.ended_rx = self.rx
        fwd, self.parsing = self.parsing, None
        if fwd is not None:
            fwd.request_end(self.trailers)

    def _limit(self, refusal: Refused) -> Refused:
        """Keep ``refusal`` for ``data_received`` (httptools wraps what a callback raises)."""
        self.refusal = refusal
        return refusal

    # -- called by Forward -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.write(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        t = self.transport
        if t is not None and not t.is_closing():
            t.writelines(parts)

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
            self._refuse(refusals.malformed("CONNECT is not supported"))
            return
        self.held = rest
        self.pause_reading(self.PAUSE_UPGRADE)

    def drain(self) -> None:
        """Stop keep-alive: close now if idle, else after the response in flight. A tunnel
        never ends by itself: its client is told to reconnect (1012) now."""
        self.draining = True
        if self.tunnel is not None:
            self.tunnel.close_for_restart()
        elif self.active is None and self.transport is not None:
            self.transport.close()
