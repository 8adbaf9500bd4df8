"""``Forward`` driven through a fake upstream built from a function: each failure rule, a
step's reply and a step's rewrite, without a socket.

The client side is a recorder of what the exchange writes (the connection's contract is
``proxy.http.context.Client``); the response bytes it got are parsed with llhttp, as a client would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson
import pytest

from proxy.errors import Refused
from proxy.http.context import Settings
from proxy.http.fake import (
    Behaviour,
    Close,
    FakeRequest,
    FakeUpstream,
    Invalid,
    Respond,
    Silence,
)
from proxy.http.forward import Forward
from proxy.http.tunnel import TunnelRegistry
from proxy.pipeline import Exchange, Pipeline, Reply, Rewrite, Step


@dataclass
class Recorder:
    """The client connection, as an exchange sees it."""

    PAUSE_UPSTREAM = 1
    peer_bytes: bytes = b"10.0.0.9"
    http10: bool = False
    draining: bool = False
    write_paused: bool = False
    paused: int = 0
    data: bytearray = field(default_factory=bytearray)
    aborted: bool = False
    finished: list[bool] = field(default_factory=list)  # reusable, per exchange

    def write(self, data: bytes) -> None:
        self.data += data

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        for part in parts:
            self.data += part

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self, reason: int) -> None:
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        self.paused &= ~reason

    def exchange_finished(self, fwd: Any, reusable: bool) -> None:
        self.finished.append(reusable)

    def start_tunnel(self, release: str, link: Any, rest: bytes) -> None:
        raise AssertionError("no tunnel here")

    def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        """The one response written, parsed: status, head fields (lower-case), body."""
        got: dict[str, Any] = {"headers": {}, "body": b""}

        class Parse:
            def on_header(self, name: bytes, value: bytes) -> None:
                got["headers"][name.lower()] = value

            def on_body(self, body: bytes) -> None:
                got["body"] += body

        parser = httptools.HttpResponseParser(Parse())
        parser.feed_data(bytes(self.data))
        return parser.get_status_code(), got["headers"], got["body"]


class Route(Step):
    """Every request to ``release``."""

    def __init__(self, release: str) -> None:
        self.release = release

    def request(self, ex: Exchange) -> Reply | None:
        ex.release = self.release
        return None


class Runtime:
    """The context an exchange runs in: the fake upstream, a pipeline, counters."""

    def __init__(self, upstream: FakeUpstream, *steps: Step, fallback: str | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.pipeline = Pipeline([Route("green"), *steps])
        self.settings = Settings(response_timeout=0.05)
        self.upstream = upstream
        self.tunnels = TunnelRegistry()
        self.fallback = fallback
        self.errors: list[tuple[str, str]] = []
        self.refusals: list[str] = []

    def failover(self, release: str) -> str | None:
        return self.fallback

    def upstream_error(self, release: str, kind: str) -> None:
        self.errors.append((release, kind))

    def rejected(self, reason: str) -> None:
        self.refusals.append(reason)

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        return self.loop.create_task(coro)


async def exchange(
    handler: Callable[[FakeRequest], Behaviour],
    method: str = "GET",
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    steps: tuple[Step, ...] = (),
    fallback: str | None = None,
    refuse: tuple[str, ...] = (),
    reused: tuple[int, ...] = (),
) -> tuple[Forward, Recorder, Runtime]:
    """One request through a ``Forward`` to the fake, until the exchange has finished."""
    upstream = FakeUpstream(handler, refuse=refuse, reused=reused)
    ctx = Runtime(upstream, *steps, fallback=fallback)
    client = Recorder()
    fields = [(b"Host", b"api.example"), *(headers or [])]
    if body:
        fields.append((b"Content-Length", b"%d" % len(body)))
    fwd = Forward(
        client, ctx, Exchange(method, b"/orders?x=1", fields, "10.0.0.9"), True, False, None
    )
    fwd.begin()
    if body:
        fwd.request_chunk(body)
    fwd.request_end()
    for _ in range(200):  # each fake event is one turn of the loop; a timeout is swept
        if fwd.finished:
            break
        await asyncio.sleep(0.005)
        fwd.sweep(ctx.loop.time(), 0.0, ctx.settings)
    assert fwd.finished
    return fwd, client, ctx


def ok(request: FakeRequest) -> Behaviour:
    return Respond(200, ((b"Content-Length", b"2"),), b"ok")


async def test_a_whole_response_reaches_the_client_and_the_request_the_release() -> None:
    fwd, client, ctx = await exchange(ok, "POST", b'{"a": 1}')
    assert client.response() == (200, {b"content-length": b"2", b"x-served-by": b"green"}, b"ok")
    (request,) = ctx.upstream.requests
    assert (request.method, request.target, request.body) == ("POST", b"/orders?x=1", b'{"a": 1}')
    assert (b"X-Forwarded-For", b"10.0.0.9") in request.headers
    assert client.finished == [True] and fwd.ex.outcome == "ok"
    assert ctx.upstream.in_flight("green") == 0


async def test_a_refused_connection_fails_over_to_the_release_carrying_traffic() -> None:
    fwd, client, ctx = await exchange(ok, "POST", b"data", refuse=("green",), fallback="blue")
    assert client.response()[0] == 200
    assert [r.release for r in ctx.upstream.requests] == ["blue"]
    assert ctx.upstream.requests[0].body == b"data"  # the request, byte for byte, elsewhere
    assert (fwd.ex.release, fwd.ex.failover_from) == ("blue", "green")
    assert ctx.errors == [("green", "connect")]


async def test_a_refused_connection_without_a_fallback_is_a_502_naming_the_release() -> None:
    fwd, client, ctx = await exchange(ok, refuse=("green",))
    status, _, body = client.response()
    payload = orjson.loads(body)
    assert (status, payload["error"], payload["release"]) == (502, "upstream_unavailable", "green")
    assert ctx.upstream.requests == [] and client.finished == [True]


@pytest.mark.parametrize(
    ("method", "headers", "retried"),
    [
        ("GET", [], True),
        ("PUT", [], True),
        ("POST", [], False),
        ("POST", [(b"Idempotency-Key", b"k-1")], True),
    ],
)
async def test_a_stale_keep_alive_connection_is_retried_only_when_that_is_safe(
    method: str, headers: list[tuple[bytes, bytes]], retried: bool
) -> None:
    """The first call goes out on a kept-alive connection that closes before any answer."""

    def handler(request: FakeRequest) -> Behaviour:
        return Close() if request.attempt == 1 else ok(request)

    fwd, client, ctx = await exchange(handler, method, b"{}", headers, reused=(1,))
    status = client.response()[0]
    if retried:
        assert status == 200
        assert [r.attempt for r in ctx.upstream.requests] == [1, 2]
        assert ctx.upstream.requests[1].body == b"{}"
        assert ctx.errors == []
    else:
        assert status == 502 and len(ctx.upstream.requests) == 1  # a POST is never sent twice
        assert ctx.errors == [("green", "broken")]


async def test_a_fresh_connection_closed_before_an_answer_is_a_502_not_a_retry() -> None:
    fwd, client, ctx = await exchange(lambda r: Close())
    assert orjson.loads(client.response()[2])["error"] == "upstream_broken"
    assert len(ctx.upstream.requests) == 1


async def test_a_release_breaking_off_after_the_head_has_the_client_cut_off() -> None:
    fwd, client, ctx = await exchange(lambda r: Close(after_head=True))
    assert client.aborted and client.data.startswith(b"HTTP/1.1 200 ")
    assert ctx.errors == [("green", "broken")] and fwd.ex.outcome == "upstream_broken"


async def test_no_answer_in_time_is_a_504() -> None:
    fwd, client, ctx = await exchange(lambda r: Silence())
    status, _, body = client.response()
    assert (status, orjson.loads(body)["error"]) == (504, "upstream_timeout")
    assert ctx.errors == [("green", "timeout")]
    assert ctx.upstream.calls[0].aborted  # the connection is not reused


async def test_an_invalid_answer_is_a_502_and_never_reaches_the_client() -> None:
    fwd, client, ctx = await exchange(lambda r: Invalid("invalid response: 2x0"))
    status, _, body = client.response()
    assert (status, orjson.loads(body)["error"]) == (502, "upstream_invalid")
    assert b"2x0" in body and ctx.errors == [("green", "invalid")]


class Gone(Step):
    """Answers ``/orders`` itself: the app is not called."""

    def request(self, ex: Exchange) -> Reply | None:
        return Reply.json(410, {"error": "gone"})

    def respond(self, ex: Exchange) -> None:
        ex.add_headers.append((b"Sunset", b"Thu, 01 Jan 2026 00:00:00 GMT"))


async def test_a_step_may_answer_the_request_itself() -> None:
    fwd, client, ctx = await exchange(ok, steps=(Gone(),))
    status, headers, body = client.response()
    assert (status, orjson.loads(body)) == (410, {"error": "gone"})
    assert headers[b"sunset"] == b"Thu, 01 Jan 2026 00:00:00 GMT"
    assert b"x-served-by" not in headers  # no release served it
    assert ctx.upstream.calls == [] and fwd.ex.outcome == "answered"


class Shout(Step):
    """Holds JSON responses and sends them upper-cased."""

    def response_head(self, ex: Exchange) -> None:
        ex.want_response_body = True

    def response_body(self, ex: Exchange, body: bytes) -> Rewrite | None:
        return Rewrite(body.upper())


async def test_a_step_may_rewrite_the_body_and_the_framing_follows() -> None:
    def handler(request: FakeRequest) -> Behaviour:
        fields = ((b"Transfer-Encoding", b"chunked"), (b"ETag", b'"v1"'))
        return Respond(200, fields, b"hello, world", trailers=((b"X-Sum", b"1"),))

    fwd, client, ctx = await exchange(handler, steps=(Shout(),))
    status, headers, body = client.response()
    assert (status, body) == (200, b"HELLO, WORLD")
    assert headers[b"content-length"] == b"12" and b"transfer-encoding" not in headers
    assert b"etag" not in headers  # a strong ETag named the bytes that were replaced


class Explodes(Step):
    def request(self, ex: Exchange) -> Reply | None:
        raise RuntimeError("bug")


async def test_a_failing_step_answers_500_and_the_release_is_not_called() -> None:
    fwd, client, ctx = await exchange(ok, steps=(Explodes(),))
    status, _, body = client.response()
    assert (status, orjson.loads(body)["error"]) == (500, "internal_error")
    assert ctx.upstream.calls == [] and client.finished == [False]


async def test_a_refusal_mid_request_cuts_the_release_off() -> None:
    upstream = FakeUpstream(ok)
    ctx = Runtime(upstream)
    client = Recorder()
    ex = Exchange("POST", b"/up", [(b"Host", b"h"), (b"Content-Length", b"10")], "10.0.0.9")
    fwd = Forward(client, ctx, ex, True, False, None)
    fwd.begin()
    fwd.request_chunk(b"01234")
    fwd.refuse(Refused(408, "request_timeout", "no request body bytes", "body_timeout"))
    assert upstream.calls[0].aborted and upstream.requests == []  # never a whole request
    assert client.response()[0] == 408 and ctx.refusals == ["body_timeout"]
    assert client.finished == [False]


async def test_a_release_at_its_call_limit_is_a_503_and_is_not_called() -> None:
    """The seam refuses a call beyond the release's limit (a circuit breaker)."""
    upstream = FakeUpstream(ok, max_in_flight=1)
    ctx = Runtime(upstream)
    first, second = Recorder(), Recorder()
    busy = Forward(first, ctx, Exchange("GET", b"/a", [], "10.0.0.9"), True, False, None)
    busy.begin()  # one call in flight on green
    fwd = Forward(second, ctx, Exchange("GET", b"/b", [], "10.0.0.9"), True, False, None)
    fwd.begin()
    status, headers, body = second.response()
    payload = orjson.loads(body)
    assert (status, payload["error"], payload["release"]) == (503, "release_overloaded", "green")
    assert headers[b"retry-after"] == b"1"
    assert len(upstream.calls) == 1 and ctx.refusals == ["release_in_flight"]


class Judge(Step):
    """Holds every request body and refuses one that says ``legacy``."""

    def request(self, ex: Exchange) -> Reply | None:
        ex.hold_request_body = True
        return None

    def request_body(self, ex: Exchange, body: bytes) -> Reply | None:
        return Reply.json(400, {"error": "legacy"}) if b"legacy" in body else None


async def test_a_held_body_may_be_refused_and_the_release_is_not_called() -> None:
    fwd, client, ctx = await exchange(ok, "POST", b'{"legacy": 1}', steps=(Judge(),))
    status, _, body = client.response()
    assert (status, orjson.loads(body)) == (400, {"error": "legacy"})
    assert ctx.upstream.calls == [] and fwd.ex.outcome == "answered"
    assert client.finished == [True]  # the body was read whole: the connection goes on


async def test_nothing_reaches_the_release_before_a_held_body_is_complete() -> None:
    seen: list[bytes] = []

    def handler(request: FakeRequest) -> Behaviour:
        seen.append(request.body)
        return ok(request)

    ctx = Runtime(FakeUpstream(handler), Judge())
    client = Recorder()
    fields = [(b"Host", b"a"), (b"Content-Length", b"10")]
    fwd = Forward(client, ctx, Exchange("POST", b"/orders", fields, "10.0.0.9"), True, False, None)
    fwd.begin()
    fwd.request_chunk(b"01234")
    assert ctx.upstream.calls == []
    fwd.request_chunk(b"56789")
    fwd.request_end()
    assert len(ctx.upstream.calls) == 1
    for _ in range(200):
        if fwd.finished:
            break
        await asyncio.sleep(0.005)
    assert client.response()[0] == 200 and seen == [b"0123456789"]


async def test_a_body_beyond_the_cap_is_not_held_and_the_hook_does_not_run() -> None:
    upstream = FakeUpstream(ok)
    ctx = Runtime(upstream, Judge())
    ctx.settings = Settings(response_timeout=0.05, inspect_cap=8)
    client = Recorder()
    fields = [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")]
    fwd = Forward(client, ctx, Exchange("POST", b"/orders", fields, "10.0.0.9"), True, True, None)
    fwd.begin()
    fwd.request_chunk(b"legacy")
    assert upstream.calls == []  # within the cap: held
    fwd.request_chunk(b" and more")
    assert len(upstream.calls) == 1  # beyond it: sent on
    fwd.request_end()
    for _ in range(200):
        if fwd.finished:
            break
        await asyncio.sleep(0.005)
    assert client.response()[0] == 200 and fwd.ex.request_skipped == "too_large"
