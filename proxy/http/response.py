"""The response side of an exchange: what the release sends, turned into what the client gets.

The head waits in ``stash`` to leave in one write with the first body bytes of the same read
(never longer: a long poll's body may come much later). A response is held whole only when a
step asked to inspect its body (``want_response_body``), and never beyond the inspection cap;
a held body may be rewritten by a step (``Rewrite``) and then leaves with a Content-Length of
its own. Trailer fields stay trailers: sent in a chunked response's trailer section, and
dropped when the client's framing has none.
"""

from __future__ import annotations

from typing import Any

from proxy.http import http1
from proxy.http.context import Client, Context
from proxy.http.upstream import Fields
from proxy.pipeline import Exchange

# A body up to this size leaves glued to the head (one bytes object, one write); a larger one
# beside it (one writev), since copying it costs more than the second buffer.
COPY_LIMIT = 16 * 1024
FAILED = object()  # what ``ResponseSide._call`` returns when a step failed (it answered)


class ResponseSide:
    """The upstream events of a response; half of ``proxy.http.forward.Forward``, which provides
    the attributes and the two methods declared here."""

    __slots__ = (
        "head_sent",
        "out_chunked",
        "stash",
        "hold",
        "hold_size",
        "reason",
        "keep_alive",
        "deadline",
    )

    ctx: Context
    client: Client
    ex: Exchange
    is_head: bool
    upgrade_token: bytes | None  # the Upgrade the client asked for, if any

    def _call(self, hook: Any, name: str, *args: Any) -> Any:
        raise NotImplementedError

    def up_invalid(self, problem: str) -> None:
        raise NotImplementedError

    def _step_failed(self, name: str) -> None:
        raise NotImplementedError

    def _finish(self, outcome: str) -> None:
        raise NotImplementedError

    def _response_init(self, keep_alive: bool) -> None:
        self.keep_alive = keep_alive  # the client's connection may serve another request
        self.deadline = 0.0  # loop time by which the response head is due; 0: none
        self.head_sent = False
        self.out_chunked = False
        self.stash: bytes | None = None
        self.hold: list[bytes] | None = None
        self.hold_size = 0
        self.reason = b""

    def up_interim(self, status: int, reason: bytes, headers: Fields) -> None:
        # 100 Continue, 103 Early Hints: never to an HTTP/1.0 client, which would take them
        # for the final response (RFC 9110, section 15.2).
        if not self.head_sent and not self.client.http10:
            self.client.write(
                http1.status_line(status, reason)
                + http1.serialize_headers(http1.end_to_end(headers))
                + b"\r\n"
            )

    def up_head(self, status: int, reason: bytes, headers: Fields) -> None:
        self.deadline = 0.0
        ex = self.ex
        if status == 101:
            # A server switches only to a protocol the client asked for (RFC 9110 section
            # 7.8); else the client's connection would become a tunnel it never wanted.
            if self.upgrade_token is None:
                self.up_invalid("invalid response: 101 to a request without Upgrade")
                return
            ex.status = status
            ex.response_headers = headers
            self._send_head(reason)
            return
        ex.status = status
        ex.response_headers = headers
        pipeline = self.ctx.pipeline
        if pipeline.response_head_hooks:
            try:  # as ``_call`` does, without its frame: this runs for every inspected response
                pipeline.response_head(ex)
            except Exception:
                self._step_failed("response_head")
                return
        if ex.want_response_body:
            length = ex.response_fields().get(b"content-length")
            if length is not None and not _fits(length, self.ctx.settings.inspect_cap):
                ex.want_response_body = False
                ex.response_skipped = "too_large"
            else:
                self.hold = []
                self.reason = reason
                return
        self._send_head(reason)

    def _send_head(self, reason: bytes, served_by: bool = True) -> bool:
        """Run the respond hooks and make the client's head (kept in ``stash``)."""
        pipeline = self.ctx.pipeline
        if pipeline.respond_hooks:
            try:
                pipeline.respond(self.ex)
            except Exception:
                self._step_failed("respond")
                return False
        client = self.client
        head, self.out_chunked, must_close = http1.response_head(
            self.ex,
            reason,
            served_by and self.ctx.settings.served_by,
            not self.keep_alive or client.draining,
            self.is_head,
            client.http10,
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
            if len(data) > COPY_LIMIT:  # one writev: the body is not copied behind the head
                self.ex.bytes_out += len(stash) + len(data)
                self.client.writelines((stash, data))
                return
            data = stash + data
        self.ex.bytes_out += len(data)
        self.client.write(data)

    def up_body(self, data: bytes) -> None:
        hold = self.hold
        if hold is not None:
            hold.append(data)
            self.hold_size += len(data)
            if self.hold_size > self.ctx.settings.inspect_cap:
                self.ex.want_response_body = False
                self.ex.response_skipped = "too_large"
                self._release_hold(b"".join(hold))
            return
        if self.head_sent:
            self._write(http1.chunk(data) if self.out_chunked else data)

    def up_flush(self) -> None:
        if self.stash is not None:
            self._write(b"")

    def _release_hold(self, body: bytes) -> bool:
        """Send the held head, then ``body``."""
        self.hold = None
        if not self._send_head(self.reason):
            return False
        if body:
            self._write(http1.chunk(body) if self.out_chunked else body)
        return True

    def _complete_response(self, trailers: Fields | None) -> None:
        """The release's response is complete: inspect (and maybe rewrite) a held body, then
        end the client's response."""
        if self.hold is not None:
            body = b"".join(self.hold)
            try:
                rewrite = self.ctx.pipeline.response_body(self.ex, body)
            except Exception:
                self._step_failed("response_body")
                return
            if rewrite is not None:
                body = rewrite.body
                self.ex.response_headers = _with_length(self.ex.response_headers, len(body))
                trailers = None  # they described the bytes that were replaced
            if not self._release_hold(body):
                return
        if not self.head_sent:  # a step failed and answered already
            return
        tail = http1.last_chunk(trailers, self.ex.response_headers) if self.out_chunked else b""
        if tail or self.stash is not None:
            self._write(tail)
        self._finish("ok")


def _with_length(headers: Fields, length: int) -> Fields:
    """``headers`` framing a body of ``length`` bytes by Content-Length."""
    drop = (b"content-length", b"transfer-encoding")
    out = [(n, v) for n, v in headers if n.lower() not in drop]
    out.append((b"Content-Length", b"%d" % length))
    return out


def _fits(length: bytes, cap: int) -> bool:
    try:
        return int(length) <= cap
    except ValueError:
        return False
