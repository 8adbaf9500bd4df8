"""One exchange's way from the client to a release and back.

A ``Forward`` is created by the listener when a request head has been parsed. When it becomes
the connection's active exchange (``begin``) the pipeline chooses the release; the request head
and body then stream to an upstream connection (buffered only while the connection opens), and
the response streams back. The response head is held back only when a step asked to inspect the
whole body (``want_response_body``), and never beyond the inspection cap.

Failure rules (the app must never see a request twice unless it is safe):
- the connection could not be opened: the request goes to the other release if that one carries
  traffic, else a JSON 502 naming the release;
- no response head within the response timeout: a JSON 504;
- a reused keep-alive connection closed before any response byte: the request is sent once more
  on a fresh connection when the proxy still holds all of it and it is idempotent (the release
  most likely closed the idle connection before reading it, but may have acted on it: a POST
  is never sent twice, RFC 9110 section 9.2.2, unless it carries an Idempotency-Key);
- the release broke off after the response head went out: the client's connection is aborted,
  so a truncated body is never presented as complete.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from proxy import http1
from proxy.errors import UpstreamBroken, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from proxy.pipeline import Exchange
from proxy.routing import failover_target
from proxy.upstream import UpstreamConnection, UpstreamPool

if TYPE_CHECKING:
    from proxy.listener import ClientConnection

REPLAY_LIMIT = 64 * 1024  # keep a copy of what was sent, up to this, to retry a stale connection
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
PENDING_LIMIT = 256 * 1024  # request bytes buffered while connecting before reading pauses


class Forward:
    __slots__ = (
        "conn",
        "ctx",
        "ex",
        "up",
        "pool",
        "head",
        "pending",
        "pending_size",
        "request_done",
        "req_chunked",
        "replay",
        "copy",
        "copy_size",
        "head_sent",
        "out_chunked",
        "stash",
        "hold",
        "hold_size",
        "deadline",
        "failed_over",
        "finished",
        "keep_alive",
        "is_head",
        "task",
        "retried",
        "replay_size",
        "tail_sent",
        "reason",
        "upgrade_token",
    )

    def __init__(
        self,
        conn: ClientConnection,
        ex: Exchange,
        keep_alive: bool,
        req_chunked: bool,
        upgrade: bytes | None,
    ) -> None:
        self.conn = conn
        self.ctx = conn.ctx
        self.ex = ex
        self.up: UpstreamConnection | None = None
        self.pool: UpstreamPool | None = None
        self.head = b""
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.request_done = False
        self.req_chunked = req_chunked
        self.replay: list[bytes] | None = []
        self.copy: list[bytes] | None = None
        self.copy_size = 0
        self.head_sent = False
        self.out_chunked = False
        self.stash: bytes | None = None
        self.hold: list[bytes] | None = None
        self.hold_size = 0
        self.deadline = 0.0  # loop time by which the response head is due; 0: none
        self.failed_over = False
        self.finished = False
        self.keep_alive = keep_alive
        self.is_head = ex.method == "HEAD"
        self.task: asyncio.Task[None] | None = None
        self.retried = False
        self.replay_size = 0
        self.tail_sent = False
        self.reason = b""
        self.upgrade_token = upgrade

    # -- request side ------------------------------------------------------------------------
    def begin(self) -> None:
        """Choose the release (the pipeline's request hooks) and start forwarding."""
        ctx = self.ctx
        ex = self.ex
        ex.started = ctx.loop.time()
        ctx.pipeline.request(ex)
        if ex.want_request_body:
            self.copy = []
        self.head = http1.request_head(
            ex,
            self.conn.peer_bytes,
            ctx.settings.trust_forwarded,
            self.req_chunked,
            self.upgrade_token,
        )
        self._use_pool(ctx.pools[ex.release])

    def _use_pool(self, pool: UpstreamPool) -> None:
        self.pool = pool
        pool.in_flight += 1
        up = pool.acquire_idle()
        if up is not None:
            self._attach(up)
        else:
            self.task = self.ctx.spawn(self._connect(pool))

    async def _connect(self, pool: UpstreamPool) -> None:
        try:
            up = await pool.connect()
        except UpstreamUnavailable as exc:
            self.task = None
            if not self.finished:
                self._unavailable(exc)
            return
        self.task = None
        if self.finished:
            up.close()
            return
        self._attach(up)

    def _attach(self, up: UpstreamConnection) -> None:
        self.up = up
        up.start(self, self.is_head)
        # Back-pressure that began before this exchange still holds: a client not taking
        # bytes (a pipelined request behind a large response), a release not taking them.
        conn = self.conn
        if conn.write_paused and up.transport is not None:
            up.transport.pause_reading()
        if up.write_paused:
            conn.pause_reading(conn.PAUSE_UPSTREAM)
        data = self.head
        if self.pending:
            data += b"".join(self.pending)
            self.pending = []
            self.pending_size = 0
        if self.request_done and self.req_chunked and not self.tail_sent:
            self.tail_sent = True
            data += http1.LAST_CHUNK
        self._remember(data)
        up.write(data)
        self.conn.resume_reading(self.conn.PAUSE_BUFFER)
        if self.request_done:
            self._arm_timer()

    def _remember(self, data: bytes) -> None:
        replay = self.replay
        if replay is not None:
            replay.append(data)
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None

    def request_chunk(self, data: bytes) -> None:
        copy = self.copy
        if copy is not None:
            copy.append(data)
            self.copy_size += len(data)
            if len(copy) > 1 and self.copy_size > self.ctx.settings.inspect_cap:
                self.copy = None
                self.ex.notes["request_skipped"] = "too_large"
        wire = http1.chunk(data) if self.req_chunked else data
        up = self.up
        if up is not None:
            self._remember(wire)
            up.write(wire)
        else:
            self.pending.append(wire)
            self.pending_size += len(wire)
            if self.pending_size > PENDING_LIMIT:
                self.conn.pause_reading(self.conn.PAUSE_BUFFER)

    def request_end(self) -> None:
        self.request_done = True
        if self.copy is not None:
            self.ctx.pipeline.request_body(self.ex, b"".join(self.copy))
            self.copy = None
        up = self.up
        if up is not None:
            if self.req_chunked and not self.tail_sent:
                self.tail_sent = True
                self._remember(http1.LAST_CHUNK)
                up.write(http1.LAST_CHUNK)
            self._arm_timer()

    def _arm_timer(self) -> None:
        # Checked by the listener's sweep (a timer per request costs more than the check).
        if not self.deadline and not self.head_sent:
            ctx = self.ctx
            self.deadline = ctx.loop.time() + ctx.settings.response_timeout

    def _cancel_timer(self) -> None:
        self.deadline = 0.0

    # -- response side (upstream events) -------------------------------------------------------
    def up_interim(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        # 100 Continue, 103 Early Hints: never to an HTTP/1.0 client, which would take them
        # for the final response (RFC 9110, section 15.2).
        if not self.head_sent and not self.conn.http10:
            self.conn.write(
                http1.status_line(status, reason)
                + http1.serialize_headers(http1.end_to_end(headers))
                + b"\r\n"
            )

    def up_head(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        self._cancel_timer()
        ex = self.ex
        ex.status = status
        ex.response_headers = headers
        if status == 101:
            self._send_head(reason)
            return
        self.ctx.pipeline.response_head(ex)
        if ex.want_response_body:
            length = ex.response_header(b"content-length")
            if length is not None and not _fits(length, self.ctx.settings.inspect_cap):
                ex.want_response_body = False
                ex.notes["response_skipped"] = "too_large"
            else:
                self.hold = []
                self.reason = reason
                return
        self._send_head(reason)

    def _send_head(self, reason: bytes) -> None:
        ex = self.ex
        self.ctx.pipeline.respond(ex)
        close = not self.keep_alive or self.conn.draining
        head, self.out_chunked, must_close = http1.response_head(
            ex, reason, self.ctx.settings.served_by, close, self.is_head, self.conn.http10
        )
        if must_close:
            self.keep_alive = False
        self.head_sent = True
        self.stash = head

    def _write(self, data: bytes) -> None:
        stash = self.stash
        if stash is not None:
            self.stash = None
            data = stash + data
        self.conn.write(data)

    def up_body(self, data: bytes) -> None:
        hold = self.hold
        if hold is not None:
            hold.append(data)
            self.hold_size += len(data)
            if self.hold_size > self.ctx.settings.inspect_cap:
                self.ex.want_response_body = False
                self.ex.notes["response_skipped"] = "too_large"
                self._release_hold(b"".join(hold))
            return
        self._write(http1.chunk(data) if self.out_chunked else data)

    def up_flush(self) -> None:
        # The head waits in ``stash`` to leave in one write with the first body bytes of the
        # same read; it never waits for a later read (a long poll's body may come much later).
        if self.stash is not None:
            self._write(b"")

    def _release_hold(self, body: bytes) -> None:
        """Send the held head, then ``body`` (what was held)."""
        self.hold = None
        self._send_head(self.reason)
        if body:
            self._write(http1.chunk(body) if self.out_chunked else body)

    def up_complete(self) -> None:
        if self.finished:
            return
        if self.hold is not None:
            body = b"".join(self.hold)
            self.ctx.pipeline.response_body(self.ex, body)
            self._release_hold(body)
        tail = http1.LAST_CHUNK if self.out_chunked else b""
        if tail or self.stash is not None:
            self._write(tail)
        self._finish("ok")

    def up_upgrade(self, rest: bytes) -> None:
        up = self.up
        if up is None or self.finished or self.ex.status != 101:
            self.up_lost(True)
            return
        self._write(b"")
        self.up = None
        up.sink = None
        self.pool_done()
        self.finished = True
        self.ctx.pipeline.done(self.ex)
        self.conn.start_tunnel(self, up, rest)

    def up_lost(self, got_bytes: bool) -> None:
        if self.finished:
            return
        self._cancel_timer()
        up, self.up = self.up, None
        if (
            not got_bytes
            and up is not None
            and up.reused
            and self.replay is not None
            and not self.retried
            and self.pool is not None
            and _replayable(self.ex)
        ):
            # A stale keep-alive connection: the release closed it before reading the request.
            self.retried = True
            self.pending = list(self.replay) + self.pending
            self.replay = []
            self.replay_size = 0
            self.head = b""
            pool = self.pool
            pool.in_flight -= 1
            self._use_pool(pool)
            return
        self._fail(UpstreamBroken(self.ex.release, "connection closed before the response ended"))

    def up_pause_writing(self) -> None:
        self.conn.pause_reading(self.conn.PAUSE_UPSTREAM)

    def up_resume_writing(self) -> None:
        self.conn.resume_reading(self.conn.PAUSE_UPSTREAM)

    # -- failures --------------------------------------------------------------------------------
    def _unavailable(self, exc: UpstreamUnavailable) -> None:
        ctx = self.ctx
        ctx.upstream_error(exc.release, exc.kind)
        target = None if self.failed_over else failover_target(ctx.traffic, exc.release)
        if target is not None and target in ctx.pools and self.pool is not None:
            self.failed_over = True
            self.pool.in_flight -= 1
            self.ex.release = target
            self.ex.notes["failover_from"] = exc.release
            self._use_pool(ctx.pools[target])
            return
        self._fail(exc, counted=True)

    def timed_out(self) -> None:
        self.deadline = 0.0
        if self.finished or self.head_sent:
            return
        up, self.up = self.up, None
        if up is not None:
            up.abort()
        timeout = self.ctx.settings.response_timeout
        self._fail(UpstreamTimeout(self.ex.release, f"no response within {timeout:g} s"))

    def _fail(self, exc: UpstreamError, counted: bool = False) -> None:
        if not counted:
            self.ctx.upstream_error(exc.release, exc.kind)
        up, self.up = self.up, None
        if up is not None:
            up.abort()
        if self.head_sent:
            self.stash = None
            self.conn.abort()
            self._finish("upstream_" + exc.kind)
            return
        status = 504 if isinstance(exc, UpstreamTimeout) else 502
        error = {"connect": "upstream_unavailable", "timeout": "upstream_timeout"}.get(
            exc.kind, "upstream_broken"
        )
        close = not (self.request_done and self.keep_alive) or self.conn.draining
        self.keep_alive = not close
        self.ex.status = status
        self.head_sent = True
        self.conn.write(http1.error_response(status, error, exc.release, exc.reason, close=close))
        self._finish("upstream_" + exc.kind)

    def reject(self, detail: str, status: int = 400) -> None:
        """The request turned out malformed after its head went to the release: cut the
        release off, and answer a 400 (or, if the response has begun, cut the client off).
        ``status`` 500: the proxy itself failed on this request."""
        if self.finished:
            return
        self._drop_upstream()
        self.keep_alive = False
        self.hold = None
        if self.head_sent and self.stash is None:
            self.conn.abort()
        else:
            self.stash = None
            self.head_sent = True
            self.ex.status = status
            error = "bad_request" if status == 400 else "internal_error"
            self.conn.write(http1.error_response(status, error, None, detail, close=True))
        self._finish("bad_request" if status == 400 else "internal_error")

    def _drop_upstream(self) -> None:
        """Stop opening a connection for this exchange and abort the one it uses (never
        reused: the release may still be sending)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
        up, self.up = self.up, None
        if up is not None:
            up.abort()

    def client_lost(self) -> None:
        """The client went away: stop work for it; the upstream connection is not reused."""
        if self.finished:
            return
        self.keep_alive = False
        if not self.ex.started:  # queued, never routed nor sent: nothing to count
            self.finished = True
            return
        self._drop_upstream()
        if self.ex.status == 0:
            self.ex.status = 499
        self._finish("client_closed")

    # -- the end ---------------------------------------------------------------------------------
    def pool_done(self) -> None:
        if self.pool is not None:
            self.pool.in_flight -= 1
            self.pool = None

    def _finish(self, outcome: str) -> None:
        if self.finished:
            return
        self.finished = True
        self._cancel_timer()
        self.pool_done()
        self.up = None
        # A release that was slow to take this request's bytes holds the next request back
        # no longer (its connection may never tell us that it has caught up).
        self.conn.resume_reading(self.conn.PAUSE_UPSTREAM)
        ex = self.ex
        ex.outcome = outcome
        self.ctx.pipeline.done(ex)
        self.conn.exchange_finished(self, self.keep_alive and self.request_done)


def _replayable(ex: Exchange) -> bool:
    return ex.method in IDEMPOTENT or ex.header(b"idempotency-key") is not None


def _fits(length: bytes, cap: int) -> bool:
    try:
        return int(length) <= cap
    except ValueError:
        return False
