"""The request body as steps see it: copied as it streams, or held until it is complete; and
the answer a step gives instead of the app (``_answer``).

Half of ``proxy.http.forward.Forward``, which provides the attributes and the methods declared
here. A step that sets ``want_request_body`` gets a copy of the complete body (the stream to
the release is never delayed); one that also sets ``hold_request_body`` has the body held
before anything is sent, so that its ``request_body`` hook may answer instead of the app.
Both are bounded by the inspection cap (``telemetry.max_body_bytes``; ``limits.max_body_bytes``
refuses larger bodies anyway): beyond it, the body streams on without the copy or the hold,
and ``Exchange.request_skipped`` says "too_large".
"""

from __future__ import annotations

from proxy.http.response import FAILED, ResponseSide
from proxy.pipeline import Reply


class RequestBody(ResponseSide):
    """The request body's half of ``Forward`` (the response side is the other)."""

    __slots__ = ("copy", "copy_size", "holding", "request_done")

    copy: list[bytes] | None  # the body, for the steps that want it
    copy_size: int
    holding: bool  # a step holds the body: nothing is sent until it is complete
    early: list[bytes]
    request_done: bool
    is_head: bool
    upgrade_token: bytes | None

    def _finish(self, outcome: str) -> None:
        raise NotImplementedError

    def _answer(self, reply: Reply) -> None:
        """A step answered the request itself: the app is not called."""
        ex = self.ex
        ex.status = reply.status
        ex.response_headers = [*reply.headers, (b"Content-Length", b"%d" % len(reply.body))]
        if not self.request_done and self._bodiless():
            # A request hook answers at the end of the head; with no body to follow, nothing
            # is left unread and the connection serves the next request.
            self.request_done = True
        if not self.request_done:
            self.keep_alive = False  # the rest of the body is not read: the connection ends
        if not self._send_head(b"", served_by=False):
            return
        self._write(b"" if self.is_head else reply.body)
        self._finish("answered")

    def _bodiless(self) -> bool:
        """Whether the request's framing says no body follows its head (RFC 9112 §6.3: no
        Transfer-Encoding and no Content-Length, or a length of 0)."""
        ex = self.ex
        if self.upgrade_token is not None or ex.header(b"transfer-encoding") is not None:
            return False
        length = ex.header(b"content-length")
        return length is None or length.strip() == b"0"

    def _start_sending(self) -> None:
        raise NotImplementedError

    def _body_at_begin(self) -> bool:
        """The body that came before the request hooks ran, copied; True when it is held
        (sending waits until it is complete)."""
        ex = self.ex
        self.copy = []
        for piece in self.early:
            self._copy(piece)
        if not (ex.hold_request_body and self._hold_fits()):
            return False
        self.holding = True
        if self.request_done:
            self._held_body_complete()
        else:
            self._continue_if_expected()
        return True

    def _hold_chunk(self, data: bytes) -> None:
        """More of a held body: kept, unless it is now too large to hold."""
        self.early.append(data)
        if self.copy is None or self.copy_size > self.ctx.settings.inspect_cap:
            self.copy = None  # too large to hold: it streams on, without the hook
            self.ex.request_skipped = "too_large"
            self.holding = False
            self._start_sending()

    def _copy(self, data: bytes) -> None:
        copy = self.copy
        if copy is not None:
            copy.append(data)
            self.copy_size += len(data)
            if len(copy) > 1 and self.copy_size > self.ctx.settings.inspect_cap:
                self.copy = None
                self.ex.request_skipped = "too_large"

    def _hold_fits(self) -> bool:
        """Whether the body may be held: what came of it and its announced length within the
        inspection cap. Beyond, it streams on without the hold (``request_skipped``)."""
        cap = self.ctx.settings.inspect_cap
        length = self.ex.header(b"content-length")
        announced = int(length) if length is not None and length.strip().isdigit() else 0
        if self.copy is not None and self.copy_size <= cap and announced <= cap:
            return True
        self.copy = None
        self.ex.request_skipped = "too_large"
        return False

    def _continue_if_expected(self) -> None:
        """A client that waits for 100 Continue before it sends the body gets it from us: the
        release, which would send it, sees nothing until the body is complete."""
        expect = self.ex.header(b"expect")
        if expect is not None and expect.strip().lower() == b"100-continue":
            if not self.client.http10:
                self.client.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _held_body_complete(self) -> None:
        """The held body is complete: the steps may answer; else it goes to the release."""
        self.holding = False
        body = b"".join(self.copy or ())
        self.copy = None
        reply = self._call(self.ctx.pipeline.request_body, "request_body", body)
        if reply is FAILED:
            return
        if isinstance(reply, Reply):
            self._answer(reply)
            return
        self._start_sending()

    def _inspect_request(self) -> bool:
        """The complete request body, to the steps that asked for it; False if one failed."""
        body = b"".join(self.copy or ())
        self.copy = None
        return self._call(self.ctx.pipeline.request_body, "request_body", body) is not FAILED
