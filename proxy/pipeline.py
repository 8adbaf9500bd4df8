"""The request path as a list of steps that do not know each other.

The listener owns the sockets and calls the pipeline at fixed points of every exchange:

    request        headers parsed, client identified, release chosen; before forwarding
    request_body   the complete request body, only when a step set ``want_request_body``
                   (a copy: the stream to the release is never delayed)
    response_head  the release's status and headers arrived; a step may set
                   ``want_response_body`` to hold the response until it is complete
    response_body  the complete response body (as received: maybe compressed), when held
    respond        just before the head goes to the client: steps add ``add_headers``
    done           the exchange ended (``outcome`` says how); record metrics and statistics

Steps subclass ``Step`` and override only the hooks they need; the pipeline keeps, per hook,
the list of steps that override it, so an unused hook costs nothing on the hot path. The order
of the steps is assembled in one place, ``proxy.runtime.build_pipeline``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class Exchange:
    """One request/response pair as the steps see it. Bytes are as on the wire."""

    __slots__ = (
        "method",
        "target",
        "path",
        "query",
        "headers",
        "peer",
        "client_id",
        "release",
        "started",
        "status",
        "response_headers",
        "add_headers",
        "want_request_body",
        "want_response_body",
        "outcome",
        "notes",
    )

    def __init__(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], peer: str
    ) -> None:
        self.method = method
        self.target = target  # the raw request target, byte for byte
        raw_path, sep, raw_query = target.partition(b"?")
        self.path = raw_path.decode("latin-1")  # still percent-encoded, exactly as received
        self.query: str | None = raw_query.decode("latin-1") if sep else None
        self.headers = headers  # (name, value) as received, in order
        self.peer = peer
        self.client_id = ""
        self.release = ""
        self.started = 0.0
        self.status = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.add_headers: list[tuple[bytes, bytes]] = []
        self.want_request_body = False
        self.want_response_body = False
        # "ok", "upstream_connect", "upstream_timeout", "upstream_broken", "upstream_invalid",
        # "client_closed", "bad_request" (malformed request: 400), "internal_error" (a step
        # failed: 500), "rejected" (Switchback refused it: a limit, a timeout, overload)
        self.outcome = "ok"
        self.notes: dict[str, Any] = {}  # per-step scratch space, keyed by step name

    def header(self, lower_name: bytes) -> bytes | None:
        """The first request header with this (lower-case) name, or None."""
        return first_header(self.headers, lower_name)

    def response_header(self, lower_name: bytes) -> bytes | None:
        """The first response header with this (lower-case) name, or None."""
        return first_header(self.response_headers, lower_name)


def first_header(headers: list[tuple[bytes, bytes]], lower_name: bytes) -> bytes | None:
    for name, value in headers:
        if name.lower() == lower_name:
            return value
    return None


class Step:
    """A feature on the request path. Override only the hooks you need."""

    name = "step"

    def request(self, ex: Exchange) -> None: ...

    def request_body(self, ex: Exchange, body: bytes) -> None: ...

    def response_head(self, ex: Exchange) -> None: ...

    def response_body(self, ex: Exchange, body: bytes) -> None: ...

    def respond(self, ex: Exchange) -> None: ...

    def done(self, ex: Exchange) -> None: ...


HOOKS = ("request", "request_body", "response_head", "response_body", "respond", "done")


class Pipeline:
    """Runs the steps' hooks in order; built once per config, replaced whole on reload."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = tuple(steps)
        table: dict[str, tuple[Callable[..., None], ...]] = {}
        for hook in HOOKS:
            base = getattr(Step, hook)
            table[hook] = tuple(
                getattr(s, hook) for s in self.steps if getattr(type(s), hook) is not base
            )
        self._request = table["request"]
        self._request_body = table["request_body"]
        self._response_head = table["response_head"]
        self._response_body = table["response_body"]
        self._respond = table["respond"]
        self._done = table["done"]

    def request(self, ex: Exchange) -> None:
        for hook in self._request:
            hook(ex)

    def request_body(self, ex: Exchange, body: bytes) -> None:
        for hook in self._request_body:
            hook(ex, body)

    def response_head(self, ex: Exchange) -> None:
        for hook in self._response_head:
            hook(ex)

    def response_body(self, ex: Exchange, body: bytes) -> None:
        for hook in self._response_body:
            hook(ex, body)

    def respond(self, ex: Exchange) -> None:
        for hook in self._respond:
            hook(ex)

    def done(self, ex: Exchange) -> None:
        for hook in self._done:
            hook(ex)
