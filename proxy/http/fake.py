"""An ``Upstream`` built from a function, for tests (as httpx's ``MockTransport``).

``FakeUpstream(handler)`` parses what the exchange writes with llhttp, as a release would, and
once a request is complete asks ``handler(request)`` what the release does:

    Respond(status, headers, body, trailers)   a whole response
    Refuse(reason)                             the connection cannot be opened
    Close(after_head=False)                    the connection closes (after the head, or
                                               before any response byte)
    Silence()                                  nothing at all (for the timeouts)
    Invalid(problem)                           a response that breaks HTTP/1.1

Events reach the exchange on the next turn of the event loop, as from a socket. ``reused``
says which calls (by number, from 1) go out on a kept-alive connection, to show what happens
when a release closes one just as a request goes out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from typing import NamedTuple

import httptools

from proxy.errors import UpstreamUnavailable
from proxy.http.upstream import Fields, Link, Sink


class FakeRequest(NamedTuple):
    release: str
    method: str
    target: bytes
    headers: Fields
    body: bytes
    attempt: int  # the call's number, from 1


class Respond(NamedTuple):
    status: int = 200
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    trailers: tuple[tuple[bytes, bytes], ...] | None = None


class Refuse(NamedTuple):
    reason: str = "connection refused"


class Close(NamedTuple):
    after_head: bool = False


class Silence(NamedTuple):
    pass


class Invalid(NamedTuple):
    problem: str = "invalid response: not HTTP"


Behaviour = Respond | Refuse | Close | Silence | Invalid
Handler = Callable[[FakeRequest], Behaviour]


class FakeCall:
    """One call to a fake release: its bytes are parsed as a request."""

    def __init__(
        self, fake: FakeUpstream, release: str, sink: Sink, attempt: int, reused: bool
    ) -> None:
        self.fake = fake
        self.release = release
        self.sink = sink
        self.attempt = attempt
        self._reused = reused
        self.written = bytearray()
        self.ended = False
        self.aborted = False
        self.refused: Refuse | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._target = b""
        self._headers: Fields = []
        self._body: list[bytes] = []
        self._in_head = True

    @property
    def reused(self) -> bool:
        return self._reused

    @property
    def write_paused(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written += data
        if self.refused is None and not self.ended:
            self._parser.feed_data(data)

    def unsent(self) -> bytes:
        return bytes(self.written) if self.refused is not None else b""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def quiet_for(self, now: float) -> float:
        return 0.0

    def detach(self) -> Link | None:
        self._end()
        return None

    def finish(self) -> None:
        self._end()

    def abort(self) -> None:
        self.aborted = True
        self._end()

    def _end(self) -> None:
        if not self.ended:
            self.ended = True
            self.fake.in_flight_by[self.release] -= 1

    # -- llhttp callbacks --
    def on_url(self, url: bytes) -> None:
        self._target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._in_head:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode()
        request = FakeRequest(
            self.release, method, self._target, self._headers, b"".join(self._body), self.attempt
        )
        self.fake.requests.append(request)
        behaviour = self.fake.handler(request)
        self.fake.loop.call_soon(self._act, behaviour)

    def _act(self, behaviour: Behaviour) -> None:
        if self.ended:
            return
        sink = self.sink
        if isinstance(behaviour, Respond):
            sink.up_head(behaviour.status, b"", list(behaviour.headers))
            if behaviour.body and not self.ended:
                sink.up_body(behaviour.body)
            if not self.ended:
                sink.up_flush()
                trailers = None if behaviour.trailers is None else list(behaviour.trailers)
                sink.up_complete(trailers, True)
        elif isinstance(behaviour, Close):
            if behaviour.after_head:
                sink.up_head(200, b"", [(b"Content-Length", b"100")])
                sink.up_flush()
            sink.up_lost(behaviour.after_head)
        elif isinstance(behaviour, Invalid):
            sink.up_invalid(behaviour.problem)
        elif isinstance(behaviour, Refuse):  # refusing once the request is in: as Close
            sink.up_lost(False)


class FakeUpstream:
    """Releases answered by ``handler``; every call and request is kept for the test."""

    def __init__(
        self,
        handler: Handler,
        *,
        refuse: Collection[str] = (),
        reused: Collection[int] = (),
        max_in_flight: int | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.handler = handler
        self.refuse = set(refuse)  # releases whose connections cannot be opened
        self.reused = set(reused)  # call numbers that go out on a kept-alive connection
        self.max_in_flight = max_in_flight  # calls at once per release (None: no limit)
        self.loop = loop or asyncio.get_running_loop()
        self.calls: list[FakeCall] = []
        self.requests: list[FakeRequest] = []
        self.in_flight_by: dict[str, int] = {}

    def open(
        self, release: str, sink: Sink, *, head_only: bool, fresh: bool = False
    ) -> FakeCall | None:
        if self.max_in_flight is not None and self.in_flight(release) >= self.max_in_flight:
            return None
        attempt = len(self.calls) + 1
        call = FakeCall(self, release, sink, attempt, reused=not fresh and attempt in self.reused)
        self.calls.append(call)
        self.in_flight_by[release] = self.in_flight_by.get(release, 0) + 1
        if release in self.refuse:
            call.refused = Refuse()
            exc = UpstreamUnavailable(release, f"connect to {release} failed: connection refused")
            self.loop.call_soon(self._refused, call, exc)
        return call

    def _refused(self, call: FakeCall, exc: UpstreamUnavailable) -> None:
        if not call.ended:
            call.sink.up_unavailable(exc)

    def in_flight(self, release: str) -> int:
        return self.in_flight_by.get(release, 0)
