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
- the release broke off (closed or reset) after the response head went out, or went silent
  mid-response for ``upstream.read_timeout``: the client's connection is aborted, so a
  truncated body is never presented as complete;
- the release's response breaks HTTP/1.1 or a limit: a JSON 502 (``upstream_invalid``), and
  nothing of it reaches the client;
- the release stopped taking request bytes for ``upstream.read_timeout``: a JSON 504;
- ``limits.max_in_flight`` requests are on the chosen release already: a JSON 503 naming it,
  with Retry-After (a circuit breaker: the release is not called);
- a step fails (our bug): a JSON 500, or the client cut off if the response has begun; a
  ``done`` hook's failure is only logged.
Refusals (``proxy.errors.Refused``) close the connection and cut off a release that has seen
part of the request: it must never take a truncated body for a whole one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from proxy import http1
from proxy.errors import (
    Refused,
    UpstreamBroken,
    UpstreamError,
    UpstreamInvalid,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.pipeline import Exchange
from proxy.routing import failover_target
from proxy.upstream import UpstreamConnection, UpstreamPool

if TYPE_CHECKING:
    from proxy.listener import ClientConnection, ListenerSettings

log = logging.getLogger("switchback.forward")

REPLAY_LIMIT = 64 * 1024  # keep a copy of what was sent, up to this, to retry a stale connection
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
PENDING_LIMIT = 256 * 1024  # request bytes buffered while connecting before reading pauses
STEP_FAILED = Refused(500, "internal_error", "the proxy failed on this request")
_ERRORS = {
    "connect": "upstream_unavailable",
    "timeout": "upstream_timeout",
    "invalid": "upstream_invalid",
}


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
        "req_trailers",
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
        self.head = b""  # what goes first on the next upstream connection
        self.pending: list[bytes] = []  # request body bytes not sent yet, as received
        self.pending_size = 0
        self.request_done = False
        self.req_chunked = req_chunked
        self.req_trailers: list[tuple[bytes, bytes]] | None = None
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
        """Choose the release (the pipeline's request hooks) and start forwarding.

        A queued (pipelined) request may have part or all of its body here already: a step
        that wants the body gets those bytes too."""
        ctx = self.ctx
        ex = self.ex
        ex.started = ctx.loop.time()
        if not self._run(ctx.pipeline.request, "request"):
            return
        pool = ctx.pools[ex.release]
        settings = ctx.settings
        if pool.in_flight >= settings.max_in_flight:
            self.refuse(
                Refused(
                    503,
                    "release_overloaded",
                    f"{ex.release} has {settings.max_in_flight} requests in flight",
                    "release_in_flight",
                    release=ex.release,
                    retry_after=settings.retry_after,
                )
            )
            return
        if ex.want_request_body:
            self.copy = []
            for piece in self.pending:
                self._copy(piece)
            if self.request_done and not self._inspect_request():
                return
        self.head = http1.request_head(
            ex,
            self.conn.peer_bytes,
            settings.trust_forwarded,
            self.req_chunked,
            self.upgrade_token,
        )
        self._use_pool(pool)

    def _run(self, hook: Callable[..., None], name: str, *args: object) -> bool:
        """Run a pipeline hook; a step that fails is our bug: logged, and the request is
        answered with a JSON 500 (or the client cut off if its response has begun)."""
        try:
            hook(self.ex, *args)
        except Exception:
            ex = self.ex
            log.exception("a step failed in %s on %s %r", name, ex.method, ex.target[:200])
            if name == "done":
                return False  # the exchange is over: nothing left to answer
            self.refuse(STEP_FAILED)
            return False
        return True

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
            body = b"".join(self.pending)
            data += http1.chunk(body) if self.req_chunked else body
            self.pending = []
            self.pending_size = 0
        if self.request_done and self.req_chunked and not self.tail_sent:
            self.tail_sent = True
            data += http1.last_chunk(self.req_trailers)
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

    def _copy(self, data: bytes) -> None:
        copy = self.copy
        if copy is not None:
            copy.append(data)
            self.copy_size += len(data)
            if len(copy) > 1 and self.copy_size > self.ctx.settings.inspect_cap:
                self.copy = None
                self.ex.notes["request_skipped"] = "too_large"

    def request_chunk(self, data: bytes) -> None:
        if self.finished:
            return
        self._copy(data)
        up = self.up
        if up is not None:
            wire = http1.chunk(data) if self.req_chunked else data
            self._remember(wire)
            up.write(wire)
        else:
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size > PENDING_LIMIT:
                self.conn.pause_reading(self.conn.PAUSE_BUFFER)

    def request_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        if self.finished:
            return
        self.request_done = True
        self.req_trailers = trailers
        if not self.ex.started:  # queued: ``begin`` sees the whole body
            return
        if self.copy is not None and not self._inspect_request():
            return
        up = self.up
        if up is not None:
            if self.req_chunked and not self.tail_sent:
                self.tail_sent = True
                tail = http1.last_chunk(trailers)
                self._remember(tail)
                up.write(tail)
            self._arm_timer()

    def _inspect_request(self) -> bool:
        """The complete request body, to the steps that asked for it; False if one failed."""
        body = b"".join(self.copy or ())
        self.copy = None
        return self._run(self.ctx.pipeline.request_body, "request_body", body)

    def _arm_timer(self) -> None:
        # Checked by the listener's sweep (a timer per request costs more than the check).
        if not self.deadline and not self.head_sent:
            ctx = self.ctx
            self.deadline = ctx.loop.time() + ctx.settings.response_timeout

    def _cancel_timer(self) -> None:
        self.deadline = 0.0

    def sweep(self, now: float, quiet: float, settings: ListenerSettings) -> None:
        """The listener's periodic check of this exchange: ``quiet`` is how long the client
        has sent nothing. A response head overdue: 504. A request body stalled: 408 (or 504
        when it is the release that stopped taking it). A release silent mid-response: cut."""
        if self.finished:
            return
        if self.deadline and now >= self.deadline:
            self.timed_out()
            return
        conn = self.conn
        if not self.request_done and self.ex.started and not conn.paused & conn.PAUSE_BUFFER:
            if conn.paused & conn.PAUSE_UPSTREAM:
                if quiet > settings.read_timeout:
                    detail = f"took no request bytes for {settings.read_timeout:g} s"
                    self._fail(UpstreamTimeout(self.ex.release, detail))
                    return
            elif quiet > settings.body_timeout:
                detail = f"no request body bytes for {settings.body_timeout:g} s"
                self.refuse(Refused(408, "request_timeout", detail, "body_timeout"))
                return
        up = self.up
        if up is None or not (self.head_sent or self.hold is not None):
            return
        if conn.write_paused:  # the client, not the release, holds the response back
            up.swept_rx = -1
        elif up.quiet_for(now) > settings.read_timeout:
            detail = f"sent nothing for {settings.read_timeout:g} s in the middle of a response"
            self._fail(UpstreamTimeout(self.ex.release, detail))

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
        if not self._run(self.ctx.pipeline.response_head, "response_head"):
            return
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

    def _send_head(self, reason: bytes) -> bool:
        ex = self.ex
        if not self._run(self.ctx.pipeline.respond, "respond"):
            return False
        close = not self.keep_alive or self.conn.draining
        head, self.out_chunked, must_close = http1.response_head(
            ex, reason, self.ctx.settings.served_by, close, self.is_head, self.conn.http10
        )
        if must_close:
            self.keep_alive = False
        self.head_sent = True
        self.stash = head
        return True

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
        if self.head_sent:
            self._write(http1.chunk(data) if self.out_chunked else data)

    def up_flush(self) -> None:
        # The head waits in ``stash`` to leave in one write with the first body bytes of the
        # same read; it never waits for a later read (a long poll's body may come much later).
        if self.stash is not None:
            self._write(b"")

    def _release_hold(self, body: bytes) -> bool:
        """Send the held head, then ``body`` (what was held)."""
        self.hold = None
        if not self._send_head(self.reason):
            return False
        if body:
            self._write(http1.chunk(body) if self.out_chunked else body)
        return True

    def up_complete(self, trailers: list[tuple[bytes, bytes]] | None, clean: bool) -> None:
        """The response is complete. ``clean`` is False when the release sent more after it:
        the response stands (it was whole), the connection was not reused, and it is counted."""
        if self.finished:
            return
        if not clean:
            self.ctx.upstream_error(self.ex.release, "invalid")
        if self.hold is not None:
            body = b"".join(self.hold)
            if not self._run(self.ctx.pipeline.response_body, "response_body", body):
                return
            if not self._release_hold(body):
                return
        if not self.head_sent:  # a step failed and answered already
            return
        # Trailer fields stay trailers: sent in a chunked response's trailer section, and
        # dropped when the client's framing has none (Content-Length, or an HTTP/1.0 close).
        tail = http1.last_chunk(trailers) if self.out_chunked else b""
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
        self._run(self.ctx.pipeline.done, "done")
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
            # Everything sent on it goes first on a fresh one; what is still pending follows.
            self.retried = True
            self.head = b"".join(self.replay)
            self.replay = []
            self.replay_size = 0
            pool = self.pool
            pool.in_flight -= 1
            self._use_pool(pool)
            return
        self._fail(UpstreamBroken(self.ex.release, "connection closed before the response ended"))

    def up_invalid(self, problem: str) -> None:
        """The release's answer breaks HTTP/1.1 or a limit: it never reaches the client."""
        if self.finished:
            return
        self._cancel_timer()
        self.up = None  # already aborted: a connection that spoke wrongly is never reused
        self._fail(UpstreamInvalid(self.ex.release, problem))

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
        timeout = self.ctx.settings.response_timeout
        self._fail(UpstreamTimeout(self.ex.release, f"no response within {timeout:g} s"))

    def _fail(self, exc: UpstreamError, counted: bool = False) -> None:
        if not counted:
            self.ctx.upstream_error(exc.release, exc.kind)
        self._drop_upstream()
        self.hold = None
        if self.head_sent:
            self.stash = None
            self.conn.abort()
            self._finish("upstream_" + exc.kind)
            return
        status = 504 if isinstance(exc, UpstreamTimeout) else 502
        error = _ERRORS.get(exc.kind, "upstream_broken")
        close = not (self.request_done and self.keep_alive) or self.conn.draining
        self.keep_alive = not close
        self.ex.status = status
        self.head_sent = True
        self.conn.write(http1.error_response(status, error, exc.release, exc.reason, close=close))
        self._finish("upstream_" + exc.kind)

    def refuse(self, refusal: Refused) -> None:
        """Answer this request with the proxy's own error (a limit, a timeout, a malformed
        body, a failed step): the release is cut off if it has seen part of the request (it
        must not take a truncated body for a complete one); if the response has begun, the
        client is cut off instead. The connection closes afterwards."""
        if self.finished:
            return
        self._drop_upstream()
        self.keep_alive = False
        self.hold = None
        if refusal.reason:
            self.ctx.rejected(refusal.reason)
        if self.head_sent and self.stash is None:
            self.conn.abort()
        else:
            self.stash = None
            self.head_sent = True
            self.ex.status = refusal.status
            self.conn.write(http1.refusal_response(refusal))
        outcome = {400: "bad_request", 500: "internal_error"}.get(refusal.status, "rejected")
        self._finish(outcome)

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
        if ex.started:
            self._run(self.ctx.pipeline.done, "done")
        self.conn.exchange_finished(self, self.keep_alive and self.request_done)


def _replayable(ex: Exchange) -> bool:
    return ex.method in IDEMPOTENT or ex.header(b"idempotency-key") is not None


def _fits(length: bytes, cap: int) -> bool:
    try:
        return int(length) <= cap
    except ValueError:
        return False
