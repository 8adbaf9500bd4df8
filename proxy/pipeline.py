"""The request path as a list of steps that do not know each other: the steps' contract.

The data plane owns the sockets and calls the pipeline at fixed points of every exchange:

    request        headers parsed, client identified, release chosen; before forwarding.
                   A hook may return a ``Reply``: the app is not called, later request hooks
                   do not run, and the reply is sent with the headers steps add in ``respond``.
    request_body   the complete request body, only when a step set ``want_request_body``
                   (a copy: the stream to the release is never delayed), unless a request
                   hook also set ``hold_request_body``: then nothing is sent to the release
                   until the body is complete, and a hook may return a ``Reply`` (the app is
                   not called). A body beyond the inspection cap (``telemetry.max_body_bytes``,
                   ``limits.max_body_bytes``) is not held: it streams on as it comes, the hook
                   does not run, and ``request_skipped`` says "too_large"
    response_head  the release's status and headers arrived; a step may set
                   ``want_response_body`` to hold the response until it is complete
    response_body  the complete response body (as received: maybe compressed), when held.
                   A hook may return a ``Rewrite``: the client gets those bytes instead, with
                   the framing (Content-Length or chunked) and Content-Encoding recomputed by
                   the data plane; later hooks see the rewritten body.
    respond        just before the head goes to the client (also for a ``Reply``): steps add
                   ``add_headers``
    done           the exchange ended (``outcome`` says how); record metrics and statistics

Steps subclass ``Step`` and override only the hooks they need; the pipeline keeps, per hook,
the list of steps that override it, so an unused hook costs nothing on the hot path. Steps
share data through typed ``Slot``s on the exchange (``ex.get(SLOT)``, ``ex.put(SLOT, v)``),
each slot owned by the module that defines it. The order of the steps is assembled in one
place, ``proxy.app.runtime.Runtime.build_pipeline``.

This module imports nothing of Switchback's: both the data plane and every feature build on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar, cast

import orjson
from mypy_extensions import mypyc_attr

T = TypeVar("T")


class Slot(Generic[T]):
    """A typed key for what steps keep on an exchange (as aiohttp's ``AppKey``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


class Reply(NamedTuple):
    """A response a step makes itself; ``headers`` are sent as given (add Content-Type)."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any, *headers: tuple[bytes, bytes]) -> Reply:
        return cls(
            status, orjson.dumps(payload), ((b"Content-Type", b"application/json"),) + headers
        )


class Rewrite(NamedTuple):
    """Replacement bytes for a response body, in ``content_encoding`` (None: identity)."""

    body: bytes
    content_encoding: bytes | None = None


class Exchange:
    """One request/response pair as the steps see it. Bytes are as on the wire."""

    __slots__ = (
        "method",
        "target",
        "_path",
        "_query",
        "headers",
        "peer",
        "client_id",
        "release",
        "started",
        "status",
        "_response_headers",
        "_response_index",
        "add_headers",
        "want_request_body",
        "hold_request_body",
        "want_response_body",
        "request_skipped",
        "response_skipped",
        "failover_from",
        "outcome",
        "bytes_in",
        "bytes_out",
        "slots",
    )

    def __init__(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], peer: str
    ) -> None:
        self.method = method
        self.target = target  # the raw request target, byte for byte
        self._path: str | None = None  # decoded when a step asks (most requests: never)
        self._query: str | None = None
        self.headers = headers  # (name, value) as received, in order
        self.peer = peer
        self.client_id = ""
        self.release = ""
        self.started = 0.0
        self.status = 0
        self._response_headers: list[tuple[bytes, bytes]] = []
        self._response_index: dict[bytes, bytes] | None = None  # built on the first look-up
        self.add_headers: list[tuple[bytes, bytes]] = []
        self.want_request_body = False
        self.hold_request_body = False  # forward only once the body is complete (see above)
        self.want_response_body = False
        # Why a body a step wanted was not held or copied ("too_large"), set by the data plane.
        self.request_skipped: str | None = None
        self.response_skipped: str | None = None
        self.failover_from: str | None = None  # the release that refused the connection
        # "ok", "upstream_connect", "upstream_timeout", "upstream_broken", "upstream_invalid",
        # "client_closed", "answered" (a step's Reply), "bad_request" (malformed: 400),
        # "internal_error" (a step failed: 500), "rejected" (a limit, a timeout, overload)
        self.outcome = "ok"
        self.bytes_in = 0  # request body bytes received (payload, without chunk framing)
        self.bytes_out = 0  # response bytes written to the client, head and framing included
        self.slots: dict[Slot[Any], Any] | None = None

    @property
    def path(self) -> str:
        """The target's path, still percent-encoded, exactly as received."""
        path = self._path
        if path is None:
            raw_path, sep, raw_query = self.target.partition(b"?")
            path = self._path = raw_path.decode("latin-1")
            self._query = raw_query.decode("latin-1") if sep else None
        return path

    @property
    def query(self) -> str | None:
        """The target's query (after ``?``) as received, or None when there is no ``?``."""
        if self._path is None:
            self.path  # noqa: B018 - decodes both
        return self._query

    def get(self, slot: Slot[T]) -> T | None:
        slots = self.slots
        return None if slots is None else cast("T | None", slots.get(slot))

    def put(self, slot: Slot[T], value: T) -> None:
        if self.slots is None:
            self.slots = {}
        self.slots[slot] = value

    def header(self, lower_name: bytes) -> bytes | None:
        """The first request header with this (lower-case) name, or None."""
        return first_header(self.headers, lower_name)

    @property
    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """The response's header fields as the release sent them (original case and order)."""
        return self._response_headers

    @response_headers.setter
    def response_headers(self, headers: list[tuple[bytes, bytes]]) -> None:
        self._response_headers = headers
        self._response_index = None

    def response_header(self, lower_name: bytes) -> bytes | None:
        """The first response header with this (lower-case) name, or None. Steps look up
        several per response: the first look-up indexes them all (one pass)."""
        return self.response_fields().get(lower_name)

    def response_fields(self) -> dict[bytes, bytes]:
        """Lower-case name -> the first value of each response header (built once; read it,
        never change it: ``response_headers`` is what the client gets)."""
        index = self._response_index
        if index is None:
            # A later entry wins in a dict, so the fields go in last to first. A compiled loop:
            # dict(zip(map(bytes.lower, ...), ...)) took twice as long (1.2 against 0.5 us for
            # seven fields, even as Python).
            index = {}
            for name, value in reversed(self._response_headers):
                index[name.lower()] = value
            self._response_index = index
        return index


def first_header(headers: Sequence[tuple[bytes, bytes]], lower_name: bytes) -> bytes | None:
    for name, value in headers:
        if name.lower() == lower_name:
            return value
    return None


def _with_encoding(
    headers: list[tuple[bytes, bytes]], encoding: bytes | None
) -> list[tuple[bytes, bytes]]:
    """``headers`` describing a body in ``encoding``: Content-Encoding replaced (or dropped for
    identity), and a strong ETag dropped, since it named the bytes that were replaced."""
    out = [
        (n, v)
        for n, v in headers
        if (low := n.lower()) != b"content-encoding" and not (low == b"etag" and v[:2] != b"W/")
    ]
    if encoding is not None:
        out.append((b"Content-Encoding", encoding))
    return out


# Compiled with the data plane (``proxy.http.native``), and subclassed by steps that may not be.
@mypyc_attr(allow_interpreted_subclasses=True)
class Step:
    """A feature on the request path. Override only the hooks you need."""

    name = "step"

    def request(self, ex: Exchange) -> Reply | None: ...

    def request_body(self, ex: Exchange, body: bytes) -> Reply | None: ...

    def response_head(self, ex: Exchange) -> None: ...

    def response_body(self, ex: Exchange, body: bytes) -> Rewrite | None: ...

    def respond(self, ex: Exchange) -> None: ...

    def done(self, ex: Exchange) -> None: ...


HOOKS = ("request", "request_body", "response_head", "response_body", "respond", "done")


class Pipeline:
    """Runs the steps' hooks in order; built once per config, replaced whole on reload.

    ``<hook>_hooks`` are the steps' methods for each hook, in order: the data plane skips a
    hook no step has (an empty tuple) without calling anything."""

    def __init__(self, steps: Sequence[Step]) -> None:
        self.steps = tuple(steps)
        table: dict[str, tuple[Callable[..., Any], ...]] = {}
        for hook in HOOKS:
            base = getattr(Step, hook)
            table[hook] = tuple(
                getattr(s, hook) for s in self.steps if getattr(type(s), hook) is not base
            )
        self.request_hooks = table["request"]
        self.request_body_hooks = table["request_body"]
        self.response_head_hooks = table["response_head"]
        self.response_body_hooks = table["response_body"]
        self.respond_hooks = table["respond"]
        self.done_hooks = table["done"]
        # A hook that one step alone has is that step's method itself: the data plane calls
        # it without the loop (one frame less per hook and request). ``response_body`` keeps
        # its loop, which also rewrites the framing headers.
        one: dict[str, Any] = {h: t[0] for h, t in table.items() if len(t) == 1}
        self.request: Callable[[Exchange], Reply | None] = one.get("request", self._request)
        self.request_body: Callable[[Exchange, bytes], Reply | None] = one.get(
            "request_body", self._request_body
        )
        self.response_head: Callable[[Exchange], None] = one.get(
            "response_head", self._response_head
        )
        self.respond: Callable[[Exchange], None] = one.get("respond", self._respond)
        self.done: Callable[[Exchange], None] = one.get("done", self._done)

    def _request(self, ex: Exchange) -> Reply | None:
        for hook in self.request_hooks:
            reply = hook(ex)
            if reply is not None:
                return cast(Reply, reply)
        return None

    def _request_body(self, ex: Exchange, body: bytes) -> Reply | None:
        """The first ``Reply`` a hook returns (later hooks do not run); the data plane answers
        with it only when the body was held (``hold_request_body``)."""
        for hook in self.request_body_hooks:
            reply = hook(ex, body)
            if reply is not None:
                return cast(Reply, reply)
        return None

    def _response_head(self, ex: Exchange) -> None:
        for hook in self.response_head_hooks:
            hook(ex)

    def response_body(self, ex: Exchange, body: bytes) -> Rewrite | None:
        """Every hook sees the body (and ``Content-Encoding``) as the one before left it; the
        last rewrite, if any. The data plane recomputes the framing."""
        rewrite: Rewrite | None = None
        for hook in self.response_body_hooks:
            new = hook(ex, body)
            if new is not None:
                rewrite = cast(Rewrite, new)
                body = rewrite.body
                ex.response_headers = _with_encoding(ex.response_headers, rewrite.content_encoding)
        return rewrite

    def _respond(self, ex: Exchange) -> None:
        for hook in self.respond_hooks:
            hook(ex)

    def _done(self, ex: Exchange) -> None:
        for hook in self.done_hooks:
            hook(ex)
