"""One exchange's way from the client to a release and back.

A ``Forward`` is created by the client connection when a request head has been parsed. When it
becomes the connection's active exchange (``begin``) the pipeline's request hooks run: they
choose the release, or answer the request themselves (a ``Reply``: the app is not called).
The request head and body then stream to the release through the ``Upstream`` seam (once the
body is complete, when a step holds it: ``proxy.http.request_body``), and the response streams
back (``proxy.http.response``).

When the release fails, ``proxy.http.failures.decide`` says what to do (retry, fail over, answer
502/504, or abort); this class only gathers the facts and carries the decision out.
Refusals (``proxy.errors.Refused``: a limit, a timeout, a malformed body, a failed step)
close the connection and cut off a release that has seen part of the request: it must never
take a truncated body for a whole one.
"""

from __future__ import annotations

import logging
from typing import Any

from proxy.errors import (
    Refused,
    UpstreamBroken,
    UpstreamError,
    UpstreamInvalid,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.http import http1, refusals
from proxy.http.context import Client, Context, Settings
from proxy.http.failures import (
    Abort,
    Answer,
    Facts,
    FailOver,
    Failure,
    Retry,
    decide,
    replayable,
)
from proxy.http.request_body import RequestBody
from proxy.http.response import FAILED
from proxy.http.upstream import Call, Fields
from proxy.pipeline import Exchange

log = logging.getLogger("switchback.forward")

REPLAY_LIMIT = 64 * 1024  # keep a copy of what was sent, up to this, to retry a stale connection
_OUTCOMES = {400: "bad_request", 500: "internal_error"}


class Forward(RequestBody):
    __slots__ = (
        "client",
        "ctx",
        "ex",
        "call",
        "early",
        "req_chunked",
        "req_trailers",
        "replay",
        "replay_size",
        "tail_sent",
        "failed_over",
        "retried",
        "finished",
        "is_head",
        "upgrade_token",
    )

    def __init__(
        self,
        client: Client,
        ctx: Context,
        ex: Exchange,
        keep_alive: bool,
        req_chunked: bool,
        upgrade: bytes | None,
    ) -> None:
        self._response_init(keep_alive)
        self.client = client
        self.ctx = ctx
        self.ex = ex
        self.call: Call | None = None
        self.early: list[bytes] = []  # body bytes parsed before ``begin`` (a queued request)
        self.request_done = False
        self.req_chunked = req_chunked
        self.req_trailers: Fields | None = None
        self.replay: list[bytes] | None = []  # what was sent, to send again (bounded)
        self.replay_size = 0
        self.copy, self.copy_size, self.holding = None, 0, False  # proxy.http.request_body
        self.tail_sent = False
        self.failed_over = False
        self.retried = False
        self.finished = False
        self.is_head = ex.method == "HEAD"
        self.upgrade_token = upgrade

    # -- request side ------------------------------------------------------------------------
    def begin(self) -> None:
        """Run the request hooks, then send the request to the release they chose. A queued
        (pipelined) request may have part or all of its body here already: steps get it too."""
        ctx = self.ctx
        ex = self.ex
        ex.started = ctx.loop.time()
        pipeline = ctx.pipeline
        if pipeline.request_hooks:
            try:
                reply = pipeline.request(ex)
            except Exception:
                self._step_failed("request")
                return
            if reply is not None:
                self._answer(reply)
                return
        if (ex.want_request_body or ex.hold_request_body) and self._body_at_begin():
            return  # held: sent once complete
        self._start_sending()

    def _start_sending(self) -> None:
        """Open the call to the chosen release and send the head, and what of the body came."""
        ex = self.ex
        if not self._open(ex.release, fresh=False):
            return
        if self.request_done and self.copy is not None and not self._inspect_request():
            return
        data = http1.request_head(
            ex,
            self.client.peer_bytes,
            self.ctx.settings.trust_forwarded,
            self.req_chunked,
            self.upgrade_token,
        )
        if self.early:
            body = b"".join(self.early)
            self.early = []
            data += http1.chunk(body) if self.req_chunked else body
        if self.request_done and self.req_chunked:
            self.tail_sent = True
            data += http1.last_chunk(self.req_trailers, ex.headers)
        self._send(data)
        if self.request_done:
            self._arm_timer()

    def _open(self, release: str, fresh: bool) -> bool:
        """A call to ``release``; False when it has ``limits.max_in_flight`` requests already
        (answered 503, a circuit breaker: the release is not called). Back-pressure that began
        before the call still holds: a client not taking bytes (a pipelined request behind a
        large response), a release not taking them."""
        call = self.call = self.ctx.upstream.open(
            release, self, head_only=self.is_head, fresh=fresh
        )
        if call is None:
            settings = self.ctx.settings
            limit, retry_after = settings.max_in_flight, settings.retry_after
            self.refuse(refusals.release_overloaded(release, limit, retry_after))
            return False
        client = self.client
        if client.write_paused:
            call.pause_reading()
        if call.write_paused:
            client.pause_reading(client.PAUSE_UPSTREAM)
        return True

    def _call(self, hook: Any, name: str, *args: Any) -> Any:
        """Run a pipeline hook; a step that fails is our bug: logged, and the request is
        answered with a JSON 500 (or the client cut off if its response has begun)."""
        try:
            return hook(self.ex, *args)
        except Exception:
            self._step_failed(name)
            return FAILED

    def _step_failed(self, name: str) -> None:
        ex = self.ex
        log.exception("a step failed in %s on %s %r", name, ex.method, ex.target[:200])
        if name != "done":  # after done there is nothing left to answer
            self.refuse(refusals.INTERNAL_ERROR)

    def _send(self, data: bytes) -> None:
        replay = self.replay
        if replay is not None:
            replay.append(data)
            self.replay_size += len(data)
            if self.replay_size > REPLAY_LIMIT:
                self.replay = None
        if self.call is not None:
            self.call.write(data)

    def request_chunk(self, data: bytes) -> None:
        if self.finished:
            return
        self.ex.bytes_in += len(data)
        if not self.ex.started:  # queued: kept for ``begin``
            self.early.append(data)
            return
        self._copy(data)
        if self.holding:
            self._hold_chunk(data)
            return
        if self.call is not None:
            self._send(http1.chunk(data) if self.req_chunked else data)

    def request_end(self, trailers: Fields | None = None) -> None:
        if self.finished:
            return
        self.request_done = True
        self.req_trailers = trailers
        if not self.ex.started:  # queued: ``begin`` sees the whole body
            return
        if self.holding:
            self._held_body_complete()
            return
        if self.copy is not None and not self._inspect_request():
            return
        if self.call is not None:
            if self.req_chunked and not self.tail_sent:
                self.tail_sent = True
                self._send(http1.last_chunk(trailers, self.ex.headers))
            self._arm_timer()

    def _arm_timer(self) -> None:
        # Checked by the listener's sweep (a timer per request costs more than the check).
        if not self.deadline and not self.head_sent:
            ctx = self.ctx
            self.deadline = ctx.loop.time() + ctx.settings.response_timeout

    def sweep(self, now: float, quiet: float, settings: Settings) -> None:
        """The listener's periodic check of this exchange: ``quiet`` is how long the client
        has sent nothing. A response head overdue: 504. A request body stalled: 408 (or 504
        when it is the release that stopped taking it). A release silent mid-response: cut."""
        if self.finished:
            return
        if self.deadline and now >= self.deadline:
            self.timed_out()
            return
        client = self.client
        call = self.call
        if not self.request_done and (call is not None or self.holding):
            if client.paused & client.PAUSE_UPSTREAM:
                if quiet > settings.read_timeout:
                    detail = f"took no request bytes for {settings.read_timeout:g} s"
                    self._failed(Failure.TIMEOUT, UpstreamTimeout(self.ex.release, detail))
                    return
            elif quiet > settings.body_timeout:
                self.refuse(refusals.body_timeout(settings.body_timeout))
                return
        if call is None or not (self.head_sent or self.hold is not None):
            return
        if client.write_paused:  # the client, not the release, holds the response back
            call.quiet_for(now)
        elif call.quiet_for(now) > settings.read_timeout:
            detail = f"sent nothing for {settings.read_timeout:g} s in the middle of a response"
            self._failed(Failure.TIMEOUT, UpstreamTimeout(self.ex.release, detail))

    # -- upstream events (besides the response side's) ---------------------------------------------
    def up_complete(self, trailers: Fields | None, clean: bool) -> None:
        """The response is complete. ``clean`` is False when the release sent more after it:
        the response stands (it was whole), the connection was not reused, and it is counted."""
        if self.finished:
            return
        self.deadline = 0.0
        if not clean:
            self.ctx.upstream_error(self.ex.release, "invalid")
        self._complete_response(trailers)

    def up_upgrade(self, rest: bytes) -> None:
        call = self.call
        if call is None or self.finished or self.ex.status != 101:
            self.up_lost(True)
            return
        self._write(b"")
        self.call = None
        link = call.detach()
        self.finished = True
        self._call(self.ctx.pipeline.done, "done")
        if link is not None:
            self.client.start_tunnel(self.ex.release, link, rest)

    def up_unavailable(self, exc: UpstreamUnavailable) -> None:
        if not self.finished:
            self.ctx.upstream_error(exc.release, exc.kind)
            self._failed(Failure.UNAVAILABLE, exc, counted=True)

    def up_lost(self, got_bytes: bool) -> None:
        if not self.finished:
            broken = UpstreamBroken(self.ex.release, "connection closed before the response ended")
            self._failed(Failure.LOST, broken, got_bytes=got_bytes)

    def up_invalid(self, problem: str) -> None:
        """The release's answer breaks HTTP/1.1 or a limit: it never reaches the client."""
        if not self.finished:
            self._failed(Failure.INVALID, UpstreamInvalid(self.ex.release, problem))

    def up_pause_writing(self) -> None:
        self.client.pause_reading(self.client.PAUSE_UPSTREAM)

    def up_resume_writing(self) -> None:
        self.client.resume_reading(self.client.PAUSE_UPSTREAM)

    def timed_out(self) -> None:
        self.deadline = 0.0
        if not self.finished and not self.head_sent:
            timeout = self.ctx.settings.response_timeout
            exc = UpstreamTimeout(self.ex.release, f"no response within {timeout:g} s")
            self._failed(Failure.TIMEOUT, exc)

    # -- failures --------------------------------------------------------------------------------
    def _failed(
        self, failure: Failure, exc: UpstreamError, *, got_bytes: bool = True, counted: bool = False
    ) -> None:
        """Gather the facts, let ``proxy.http.failures.decide`` choose, carry it out."""
        ctx = self.ctx
        call = self.call
        facts = Facts(
            failure,
            head_sent=self.head_sent and self.stash is None,
            got_bytes=got_bytes,
            reused=call is not None and call.reused,
            holds_request=self.replay is not None,
            replayable=replayable(self.ex),
            retried=self.retried,
            failed_over=self.failed_over,
            fallback=ctx.failover(exc.release) if failure is Failure.UNAVAILABLE else None,
        )
        action = decide(facts)
        if isinstance(action, FailOver):
            self.failed_over = True
            self._reopen(action.release, self.call.unsent() if self.call is not None else b"")
            return
        if isinstance(action, Retry):
            # A stale keep-alive connection: the release closed it before reading the request.
            # Everything sent on it goes first on a fresh one.
            self.retried = True
            self._reopen(self.ex.release, b"".join(self.replay or ()), fresh=True)
            return
        if not counted:
            ctx.upstream_error(exc.release, exc.kind)
        self._drop_upstream()
        self.hold = None
        if isinstance(action, Abort):
            self.stash = None
            self.client.abort()
        elif isinstance(action, Answer):
            self._answer_error(action, exc)
        self._finish("upstream_" + exc.kind)

    def _reopen(self, release: str, data: bytes, fresh: bool = False) -> None:
        old = self.call
        if old is not None:
            old.abort()
        if release != self.ex.release:
            self.ex.failover_from = self.ex.release
            self.ex.release = release
        if self._open(release, fresh) and self.call is not None:
            self.call.write(data)
        if self.request_done:
            self._arm_timer()

    def _answer_error(self, action: Answer, exc: UpstreamError) -> None:
        close = not (self.request_done and self.keep_alive) or self.client.draining
        self.keep_alive = not close
        self.ex.status = action.status
        self.head_sent = True
        self.stash = None
        self._write(  # counted in bytes_out
            http1.error_response(action.status, action.code, exc.release, exc.reason, close=close)
        )

    def refuse(self, refusal: Refused) -> None:
        """Answer this request with the proxy's own error (a limit, a timeout, a malformed
        body, a failed step): the release is cut off if it has seen part of the request; if
        the response has begun, the client is cut off instead. The connection closes after."""
        if self.finished:
            return
        self._drop_upstream()
        self.keep_alive = False
        self.hold = None
        if refusal.reason:
            self.ctx.rejected(refusal.reason)
        if self.head_sent and self.stash is None:
            self.client.abort()
        else:
            self.stash = None
            self.head_sent = True
            self.ex.status = refusal.status
            self._write(http1.refusal_response(refusal))
        self._finish(_OUTCOMES.get(refusal.status, "rejected"))

    def _drop_upstream(self) -> None:
        """Abort the call (never reused: the release may still be sending)."""
        call, self.call = self.call, None
        if call is not None:
            call.abort()

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

    def pause_upstream(self) -> None:
        """The client is not taking response bytes: stop reading from the release."""
        if self.call is not None:
            self.call.pause_reading()

    def resume_upstream(self) -> None:
        if self.call is not None:
            self.call.resume_reading()

    # -- the end ---------------------------------------------------------------------------------
    def _finish(self, outcome: str) -> None:
        if self.finished:
            return
        self.finished = True
        self.deadline = 0.0
        call, self.call = self.call, None
        if call is not None:
            call.finish()
        client = self.client
        # A release that was slow to take this request's bytes holds the next request back
        # no longer (its connection may never tell us that it has caught up).
        client.resume_reading(client.PAUSE_UPSTREAM)
        ex = self.ex
        ex.outcome = outcome
        pipeline = self.ctx.pipeline
        if ex.started and pipeline.done_hooks:
            try:
                pipeline.done(ex)
            except Exception:
                self._step_failed("done")
        client.exchange_finished(self, self.keep_alive and self.request_done)
