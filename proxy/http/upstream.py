"""The one seam before the network: how an exchange sends a request to a release.

As httpx's ``AsyncBaseTransport``: everything that sends a request to a release goes through an
``Upstream`` (forwarding today; shadow copies and journal replay later), so a test can put a
fake built from a function in its place (``proxy.http.fake``) and the real one
(``proxy.http.pool.Pools``) keeps one keep-alive pool per release.

``Upstream.open`` starts one ``Call``: the request's lease on a connection. The caller writes
the request (head, then body) to the call at once; the call buffers while its connection opens,
and asks the sink to pause when too much is buffered. Everything the release does comes back
as ``Sink`` events. A call ends with ``finish`` (the exchange is over; a connection whose
response completed is back in its pool by then) or ``abort`` (the connection, if any, is
closed and never reused, e.g. after a refusal cut the request short).

The data plane is event-driven (asyncio protocols), so the seam is too: no coroutine and no
task per request on the hot path.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from proxy.errors import UpstreamUnavailable

Fields = list[tuple[bytes, bytes]]


class Sink(Protocol):
    """What an exchange is told about its call. ``request_done``: the whole request has been
    written (a connection is reusable only then)."""

    request_done: bool

    def up_unavailable(self, exc: UpstreamUnavailable) -> None: ...
    def up_interim(self, status: int, reason: bytes, headers: Fields) -> None: ...
    def up_head(self, status: int, reason: bytes, headers: Fields) -> None: ...
    def up_body(self, data: bytes) -> None: ...
    def up_flush(self) -> None: ...
    def up_complete(self, trailers: Fields | None, clean: bool) -> None: ...
    def up_upgrade(self, rest: bytes) -> None: ...
    def up_lost(self, got_bytes: bool) -> None: ...
    def up_invalid(self, problem: str) -> None: ...
    def up_pause_writing(self) -> None: ...
    def up_resume_writing(self) -> None: ...


class Link(Protocol):
    """A release connection handed over whole, for a tunnel (WebSocket) after a 101."""

    transport: asyncio.Transport | None
    tunnel: asyncio.Protocol | None

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class Call(Protocol):
    """One request on its way to a release."""

    @property
    def reused(self) -> bool:
        """Sent on a kept-alive connection, which the release may close just as it goes."""
        ...

    @property
    def write_paused(self) -> bool:
        """The release (or the connection still opening) is not taking bytes."""
        ...

    def write(self, data: bytes) -> None: ...
    def unsent(self) -> bytes:
        """What was written but never reached a connection (it could not be opened)."""
        ...

    def pause_reading(self) -> None: ...  # the client is not taking response bytes
    def resume_reading(self) -> None: ...
    def quiet_for(self, now: float) -> float:
        """Seconds the release has sent nothing, as far as the sweep (calling it) can tell."""
        ...

    def detach(self) -> Link | None:
        """Take the connection out of the pool's hands (a 101): the tunnel owns it now."""
        ...

    def finish(self) -> None: ...
    def abort(self) -> None: ...


class Upstream(Protocol):
    """The releases, as the data plane reaches them."""

    def open(
        self, release: str, sink: Sink, *, head_only: bool, fresh: bool = False
    ) -> Call | None:
        """Start a call to ``release``, or None when it has as many calls as it may have (a
        circuit breaker: the caller answers 503). ``head_only``: the request is HEAD (no
        response body whatever the head says). ``fresh``: not on a kept-alive connection (a
        retry)."""
        ...

    def in_flight(self, release: str) -> int:
        """Calls to ``release`` not finished yet."""
        ...
