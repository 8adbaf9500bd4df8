"""What a client connection refuses, and how it ends: admission, refusals, lingering close,
and the timeouts the listener's sweep checks.

Half of ``proxy.http.connection.ClientConnection`` (a mixin over its attributes, declared below),
kept apart so that the parser's callbacks and the pipelining queue read on their own.

A refusal is answered after the requests pipelined before it, then the connection closes
with a lingering read (nginx's "lingering close"): what the client still sends is read and
dropped for a moment, so that it reads the answer instead of a reset of unread data.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Protocol

from proxy.errors import Refused
from proxy.http import http1, refusals
from proxy.http.context import Context, Settings
from proxy.pipeline import first_header

if TYPE_CHECKING:
    from proxy.http.connection import ClientConnection
    from proxy.http.forward import Forward
    from proxy.http.tunnel import Tunnel

log = logging.getLogger("switchback.listener")

LINGER_QUIET = 2.0  # a refused client that keeps sending is read (and ignored) this long...
LINGER_MAX = 10.0  # ...but no longer than this in all, then closed


class Server(Protocol):
    """What a connection needs of its listener (``proxy.http.listener.Listener``)."""

    ctx: Context
    draining: bool
    shedding: bool

    connections: set[ClientConnection]

    def connection_closed(self) -> None: ...


class Guard:
    # The attributes this half assigns (the rest are ``ClientConnection``'s): slots, since a
    # connection has more attributes than CPython shares keys for in an instance dict, and
    # every one of them is read per request.
    __slots__ = (
        "rejected",
        "closing",
        "lingering",
        "parsing",
        "paused",
        "rx",
        "swept_rx",
        "quiet_since",
        "idle_since",
        "head_since",
        "blocked_since",
        "linger_since",
    )

    PAUSE_REJECTED = 16  # a refused request: nothing more is read from this client

    server: Server
    ctx: Context
    transport: asyncio.Transport | None
    peer: str
    headers: list[tuple[bytes, bytes]]
    parsing: Forward | None
    active: Forward | None
    queue: deque[Forward]
    tunnel: Tunnel | None
    rejected: Refused | None
    closing: bool
    lingering: bool
    paused: int
    write_paused: bool
    eof: bool
    over_capacity: bool
    served: bool
    head_bytes: int
    rx: int
    swept_rx: int
    quiet_since: float
    idle_since: float
    head_since: float
    blocked_since: float
    linger_since: float

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError

    def pause_reading(self, reason: int) -> None:
        raise NotImplementedError

    def _admission(self) -> Refused | None:
        """Whether a complete request head may go on: the connection cap, load shedding and
        an announced body over the limit are answered before any release is chosen."""
        settings = self.ctx.settings
        if self.over_capacity:
            return refusals.too_many_connections(settings.max_connections, settings.retry_after)
        if self.server.shedding:
            return refusals.shedding(settings.retry_after)
        limit = settings.max_body_bytes
        if limit is not None:
            length = first_header(self.headers, b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                return refusals.body_too_large(limit)
        return None

    def _refuse(self, refusal: Refused) -> None:
        """A request Switchback answers itself: the requests before it are answered, then the
        refusal, then the connection closes.

        When the head was fine but the body is not, that request may already be on its way
        to the release: ``Forward.refuse`` cuts it off there (the release must not take a
        truncated body for a complete one) and answers itself."""
        if refusal.status in (400, 408, 413, 414, 431, 501):  # the runtime logs each reason
            log.debug("refused a request from %s: %d %s", self.peer, refusal.status, refusal.detail)
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
        still sends."""
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
        """Periodic check of every timeout of this connection (see ``Listener._sweeper``):
        lingering, a client not reading, the active exchange's own, an incomplete head, an
        idle keep-alive connection."""
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
        if self.closing:
            return
        if self.write_paused:  # a tunnel's client too: its release is paused meanwhile
            if not self.blocked_since:
                self.blocked_since = now
            elif now - self.blocked_since > settings.send_timeout:
                self.ctx.rejected("send_timeout")
                self.abort()  # the exchange in flight ends as client_closed
                return
        if self.tunnel is not None:  # a tunnel has no other timeout: either side may be quiet
            return
        fwd = self.active
        if fwd is not None:
            fwd.sweep(now, quiet, settings)
        elif self.head_bytes:  # part of a request head has arrived
            if not self.head_since:
                self.head_since = now
            elif now - self.head_since > settings.head_timeout:
                self._refuse(refusals.head_timeout(settings.head_timeout))
        else:
            if not self.idle_since:
                self.idle_since = now
            # A new connection gets the head timeout for its first request, as in nginx.
            limit = settings.keepalive_timeout if self.served else settings.head_timeout
            if now - self.idle_since > limit:
                self._close(linger=False)
