"""One connection to a release: HTTP/1.1 responses parsed by llhttp, checked, and told as
events to the exchange it serves.

An ``UpstreamConnection`` serves one exchange at a time. While it does, its ``sink`` (the
exchange's ``proxy.http.upstream.Sink``) receives the response as events: ``up_interim`` (1xx),
``up_head``, ``up_body``, ``up_complete`` (with the trailer fields, if any), ``up_upgrade``
(101: the bytes after the head), ``up_lost`` (closed or reset before the end) and
``up_invalid`` (the response breaks HTTP/1.1 or a limit), and ``up_flush`` after each read
from the release has been parsed.
When the response is complete the connection goes back to its pool if both sides allow
keep-alive (``proxy.http.pool``).

Two things llhttp (through httptools) cannot be told, handled here: a response to HEAD has no
body whatever its Content-Length says, so the exchange completes at the head and the connection
is not reused; and a body delimited by the connection closing completes on a clean EOF (a
reset cuts it: the client must not take a truncated body for a complete one).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, cast

import httptools

from proxy.http import reads
from proxy.http.upstream import Sink

log = logging.getLogger("switchback.upstream")


class Home(Protocol):
    """What a connection needs of its pool (``proxy.http.pool.UpstreamPool``)."""

    name: str
    max_head_bytes: int
    in_flight: int

    def release(self, conn: UpstreamConnection, reusable: bool) -> None: ...
    def forget(self, conn: UpstreamConnection) -> None: ...


class _Stop(Exception):
    """Raised from a parser callback to stop parsing what the release sent (the reason is kept
    on the connection): a second message in a read, a limit, an unsupported framing.
    Control flow caught within this module: not in ``proxy.errors``' tree."""


class UpstreamConnection:  # an asyncio protocol (no base: see ``proxy.http.native``)
    """One connection to a release. What the release sends is checked as strictly as what a
    client sends: llhttp's strict parse (no bare CR/LF, no NUL, one Content-Length, not both
    Content-Length and Transfer-Encoding), a bounded head, ``chunked`` as the only transfer
    coding, and nothing after a complete response. A response that fails a check is never
    passed on (``up_invalid``); bytes after a complete response end the connection (it is not
    reused) and never answer another request."""

    __slots__ = (
        "pool",
        "parser",
        "transport",
        "sink",
        "tunnel",
        "head_only",
        "got_bytes",
        "eof_body",
        "peer_eof",
        "interim",
        "after_interim",
        "upgraded",
        "reused",
        "write_paused",
        "idle_since",
        "headers",
        "trailers",
        "reason",
        "in_head",
        "head_bytes",
        "field_bytes",
        "complete",
        "keep_alive",
        "extra",
        "problem",
        "leased",
        "rx",
        "swept_rx",
        "quiet_since",
        "body_rx",
        "tail_bytes",
        "reads",
    )

    def __init__(self, pool: Home) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sink: Sink | None = None
        self.tunnel: asyncio.Protocol | None = None  # set once a 101 turned it into a tunnel
        self.head_only = False  # the request was HEAD
        self.got_bytes = False  # any response byte for the current exchange
        self.eof_body = False  # the current body ends when the connection closes
        self.peer_eof = False  # the release shut down its side cleanly (FIN, not a reset)
        self.interim = False
        # An interim (1xx) head was complete: the next head may have begun in the same read,
        # where ``head_bytes`` has not counted its share.
        self.after_interim = False
        self.upgraded = False
        self.reused = False
        self.write_paused = False  # the release is not taking request bytes fast enough
        self.idle_since = 0.0
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.reason = b""
        self.in_head = True  # the response head is not complete yet
        self.head_bytes = 0  # bytes read while the head was incomplete (bounded)
        self.field_bytes = 0  # header (or trailer) bytes of the current message, exactly
        self.complete = False  # a whole response was parsed in the current read
        self.keep_alive = False  # the complete response allows reuse
        self.extra = False  # bytes followed the complete response in the same read
        self.problem: str | None = None  # why the response is invalid
        self.leased = False  # an exchange holds it (counted in the pool's in_flight)
        self.rx = 0  # reads so far: the sweep tells a silent release by it
        self.swept_rx = -1
        self.quiet_since = 0.0
        # After the head: the last read that held body bytes (or the head's end), and what was
        # read since without any (a chunked body's framing, its trailer section), bounded as a
        # head. httptools keeps a trailer field to itself until it ends, so an endless one is
        # seen only in the bytes read.
        self.body_rx = 0
        self.tail_bytes = 0
        self.reads = reads.buffer()  # where uvloop reads what the release sends

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.reads

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self.reads[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """What the release sent: ``bytes`` under asyncio's own loop, a view of this thread's
        read buffer under uvloop (``proxy.http.reads``), not to be kept past this call."""
        if self.tunnel is not None:
            self.tunnel.data_received(bytes(data))
            return
        sink = self.sink
        if sink is None:  # an idle connection must not speak: drop it
            self.close()
            return
        self.got_bytes = True
        self.rx += 1
        if self.in_head:
            self.head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self.sink is not None:
                self.sink.up_upgrade(bytes(data[exc.args[0] :]))
            return
        except httptools.HttpParserCallbackError as exc:
            if not isinstance(exc.__context__, _Stop):
                log.exception("bug while handling a response from %s", self.pool.name)
                self.sink = None
                self.close()
                sink.up_lost(True)
                return
        except httptools.HttpParserError as exc:
            if self.complete:
                self.extra = True  # not HTTP after a complete response: the response stands
            else:
                self.problem = f"invalid response: {exc}"
        if self.complete:
            self._completed()
            return
        if self.problem is not None:
            self._invalid(self.problem)
            return
        limit = self.pool.max_head_bytes
        if self.in_head:
            if self.head_bytes > limit:
                self._invalid(f"response head over {limit} bytes")
                return
        elif self.body_rx == self.rx:
            self.tail_bytes = 0
        else:  # nothing of this read was body
            self.tail_bytes += len(data)
            if self.tail_bytes > limit:
                self._invalid(f"response trailer section over {limit} bytes")
                return
        current = self.sink
        if current is not None:
            current.up_flush()  # what this read produced goes out now, in one write

    def eof_received(self) -> bool | None:
        self.peer_eof = True
        return False  # close the transport: half-open upstream connections are not reused

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool.forget(self)
        if self.tunnel is not None:
            self.tunnel.connection_lost(exc)
            return
        sink, self.sink = self.sink, None
        if sink is None:
            return
        if self.eof_body and self.peer_eof and exc is None:
            sink.up_complete(self.trailers, True)  # a body delimited by a clean close
        else:
            sink.up_lost(self.got_bytes)  # a reset is never the end of a body

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
        if self.complete:  # a second response in the same read: not for anybody
            self.extra = True
            raise _Stop
        self.headers = []
        self.trailers = None
        self.reason = b""
        self.in_head = True
        self.field_bytes = 0

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.in_head:  # its size is checked once complete, and by the bytes read until then
            self.headers.append((name, value))
            return
        # The trailer section of a chunked body: never merged into the head, bounded as one.
        limit = self.pool.max_head_bytes
        self.field_bytes += len(name) + len(value) + 4
        if self.field_bytes > limit:
            self.problem = f"response trailer section over {limit} bytes"
            raise _Stop
        if self.trailers is None:
            self.trailers = []
        self.trailers.append((name, value))

    def on_headers_complete(self) -> None:
        limit = self.pool.max_head_bytes
        if self.head_bytes > limit or self.after_interim:
            # What was read while it came is over, or not known (after an interim response):
            # measure the head. Each field's name and value, plus ": " and CRLF. A plain loop
            # (a large body read with its head lands here on every response): half a
            # generator's cost.
            self.after_interim = False
            headers = self.headers
            size = len(self.reason) + 4 * len(headers)
            for name, value in headers:
                size += len(name) + len(value)
            if size > limit:
                self.problem = f"response head over {limit} bytes"
                raise _Stop
        self.in_head = False
        self.head_bytes = 0
        self.field_bytes = 0
        self.body_rx = self.rx  # what follows in this read is not counted as a trailer's
        sink = self.sink
        if sink is None:
            return
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:
                self.upgraded = True  # llhttp reports the message complete, then the upgrade
            elif status >= 100:
                self.interim = True
                self.after_interim = True
                sink.up_interim(status, self.reason, self.headers)
                return
            else:  # llhttp takes any three digits; RFC 9110 section 15: 100 to 599
                self.problem = f"invalid response: status {status}"
                raise _Stop
        elif status > 599:
            self.problem = f"invalid response: status {status}"
            raise _Stop
        elif not self.head_only and status not in (204, 304):
            framing = _framing(self.headers)
            if framing is None:
                self.problem = "invalid response: a transfer coding other than chunked"
                raise _Stop
            self.eof_body = not framing
        sink.up_head(status, self.reason, self.headers)
        if self.head_only and self.sink is sink:
            # No body follows a HEAD response; llhttp would wait for Content-Length bytes.
            self.sink = None
            self.close()
            sink.up_complete(None, True)

    def on_body(self, body: bytes) -> None:
        self.body_rx = self.rx
        if self.sink is not None:
            self.sink.up_body(body)

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.upgraded or self.sink is None:
            return
        self.eof_body = False
        self.complete = True  # carried out once the whole read is parsed: see _completed
        self.keep_alive = self.parser.should_keep_alive()

    # -- the end of a response -------------------------------------------------------------
    def _completed(self) -> None:
        """The response is complete: hand the connection back (unless more bytes came after
        the response, which makes it unusable) before telling the exchange."""
        sink, self.sink = self.sink, None
        self.complete = False
        if sink is None:
            return
        clean = not self.extra
        self.pool.release(self, clean and self.keep_alive and sink.request_done)
        sink.up_complete(self.trailers, clean)

    def _invalid(self, problem: str) -> None:
        sink, self.sink = self.sink, None
        self.abort()
        if sink is not None:
            sink.up_invalid(problem)

    # -- one exchange's call (``proxy.http.upstream.Call``), leased from the pool ------------
    def start(self, sink: Sink, head_only: bool) -> None:
        """Serve ``sink``'s exchange; it counts in the pool's in-flight until ``finish``."""
        if not self.leased:
            self.leased = True
            self.pool.in_flight += 1
        self.sink = sink
        self.head_only = head_only
        self.got_bytes = False
        self.eof_body = False
        self.interim = False
        self.in_head = True
        self.head_bytes = 0
        self.extra = False
        self.problem = None
        self.swept_rx = -1

    def quiet_for(self, now: float) -> float:
        """Seconds since the release last sent anything, as far as the sweep can tell."""
        if self.rx != self.swept_rx:
            self.swept_rx = self.rx
            self.quiet_since = now
        return now - self.quiet_since

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def unsent(self) -> bytes:
        return b""  # connected: everything written went out

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def detach(self) -> UpstreamConnection:
        self.sink = None
        self.finish()
        return self

    def finish(self) -> None:
        """The exchange is over (the connection, if reusable, is back in the pool already)."""
        if self.leased:
            self.leased = False
            self.pool.in_flight -= 1

    def close(self) -> None:
        self.sink = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Close now and for good (the release may still be sending); the lease ends."""
        self.sink = None
        if self.transport is not None:
            self.transport.abort()
        self.finish()


def _framing(headers: list[tuple[bytes, bytes]]) -> bool | None:
    """True: the body is framed (Content-Length, or chunked); False: it ends with the
    connection; None: a transfer coding Switchback does not decode (as nginx, refused)."""
    # llhttp refuses a response with both, so a Content-Length decides at once. Lengths are
    # compared first: most fields are neither, and need no lower-cased copy. Transfer-Encoding
    # fields make one list (RFC 9110 section 5.3): all of it must be ``chunked`` alone, or
    # llhttp reads the body up to the close (RFC 9112 section 6.3).
    coding: bytes | None = None
    for name, value in headers:
        size = len(name)
        if size == 14 and name.lower() == b"content-length":
            return True
        if size == 17 and name.lower() == b"transfer-encoding":
            coding = value if coding is None else coding + b"," + value
    if coding is None:
        return False
    return coding.strip().lower() == b"chunked" or None
