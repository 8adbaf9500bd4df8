"""A request sent on its own through the ``Upstream`` seam, its answer held whole.

For copies of a request that no client waits for (shadow traffic): ``WholeSender.send`` writes
the request bytes at once to a call and tells ``done`` once, either with the ``Whole`` answer
(status, headers, body) or with why there is none:

    connect     the connection could not be opened
    busy        the release has ``limits.max_in_flight`` calls already (the call is not made)
    broken      the connection closed before the answer ended
    invalid     the answer breaks HTTP/1.1 or a limit (or is a 101)
    too_large   the body exceeds ``max_body`` (the call is cut off)
    cancelled   the caller gave up (``cancel``, e.g. its timeout)

A kept-alive connection the release closed before answering is tried once more on a fresh one
when the caller says the request may be sent twice (``retry``), as forwarding does.
``request_bytes`` is the head (``http1.request_head``: as forwarded) and the body as received.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from proxy.errors import UpstreamUnavailable
from proxy.http import http1
from proxy.http.failures import replayable
from proxy.http.upstream import Call, Fields, Upstream
from proxy.pipeline import Exchange


class Whole(NamedTuple):
    status: int
    headers: Fields
    body: bytes


Done = Callable[[Whole | None, str], None]


def request_bytes(ex: Exchange, peer: bytes, trust_forwarded: bool, body: bytes) -> bytes:
    """The request as forwarding sent it: a chunked body goes chunked again."""
    chunked = any(n.lower() == b"transfer-encoding" for n, _ in ex.headers)
    head = http1.request_head(ex, peer, trust_forwarded, chunked, None)
    if not chunked:
        return head + body
    return head + (http1.chunk(body) if body else b"") + http1.LAST_CHUNK


class WholeCall:
    """The ``Sink`` of one such call."""

    __slots__ = (
        "sender",
        "release",
        "data",
        "head_only",
        "max_body",
        "done",
        "retry",
        "call",
        "status",
        "headers",
        "body",
        "size",
        "ended",
        "request_done",
    )

    def __init__(
        self, sender: WholeSender, release: str, data: bytes, head_only: bool, max_body: int,
        done: Done, retry: bool,
    ) -> None:  # fmt: skip
        self.sender = sender
        self.release = release
        self.data = data
        self.head_only = head_only
        self.max_body = max_body
        self.done = done
        self.retry = retry
        self.call: Call | None = None
        self.status = 0
        self.headers: Fields = []
        self.body: list[bytes] = []
        self.size = 0
        self.ended = False
        self.request_done = False

    def start(self, fresh: bool) -> bool:
        call = self.sender.upstream().open(
            self.release, self, head_only=self.head_only, fresh=fresh
        )
        if call is None:
            return False
        self.call = call
        call.write(self.data)
        self.request_done = True
        return True

    def cancel(self) -> None:
        self._end(None, "cancelled")

    def _end(self, answer: Whole | None, why: str) -> None:
        if self.ended:
            return
        self.ended = True
        call, self.call = self.call, None
        if call is not None:
            if answer is not None:
                call.finish()
            else:
                call.abort()
        self.done(answer, why)

    # -- Sink --
    def up_unavailable(self, exc: UpstreamUnavailable) -> None:
        self._end(None, "connect")

    def up_interim(self, status: int, reason: bytes, headers: Fields) -> None:
        pass

    def up_head(self, status: int, reason: bytes, headers: Fields) -> None:
        self.status = status
        self.headers = headers

    def up_body(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_body:
            self._end(None, "too_large")
            return
        self.body.append(data)

    def up_flush(self) -> None:
        pass

    def up_complete(self, trailers: Fields | None, clean: bool) -> None:
        self._end(Whole(self.status, self.headers, b"".join(self.body)), "")

    def up_upgrade(self, rest: bytes) -> None:
        self._end(None, "invalid")

    def up_lost(self, got_bytes: bool) -> None:
        call = self.call
        if self.retry and not got_bytes and call is not None and call.reused and not self.ended:
            self.retry = False
            self.call = None
            call.abort()
            self.request_done = False
            if self.start(fresh=True):
                return
        self._end(None, "broken")

    def up_invalid(self, problem: str) -> None:
        self._end(None, "invalid")

    def up_pause_writing(self) -> None:
        pass

    def up_resume_writing(self) -> None:
        pass


class WholeSender:
    """Sends through whatever ``Upstream`` the process has now (pools are replaced whole), with
    the X-Forwarded-* policy of the settings in force."""

    def __init__(
        self, upstream: Callable[[], Upstream], trust_forwarded: Callable[[], bool]
    ) -> None:
        self.upstream = upstream
        self.trust_forwarded = trust_forwarded

    def send(
        self, release: str, ex: Exchange, body: bytes, *, max_body: int, done: Done
    ) -> Callable[[], None] | None:
        """Send ``ex``'s request with ``body`` to ``release``; the call's ``cancel``, or None
        when the release is busy (``done`` is not called then). A stale kept-alive connection
        is retried as forwarding retries it (``failures.replayable``)."""
        data = request_bytes(ex, ex.peer.encode("latin-1"), self.trust_forwarded(), body)
        head_only = ex.method == "HEAD"
        whole = WholeCall(self, release, data, head_only, max_body, done, replayable(ex))
        return whole.cancel if whole.start(fresh=False) else None
