"""A request sent on its own with its answer held whole (proxy.http.whole), in front of the
fake upstream built from a function (proxy.http.fake)."""

from __future__ import annotations

import asyncio

from proxy.http.fake import Close, FakeRequest, FakeUpstream, Invalid, Refuse, Respond
from proxy.http.whole import Whole, WholeSender
from proxy.pipeline import Exchange

Got = list[tuple[Whole | None, str]]


def _exchange(method: str = "GET", headers: list[tuple[bytes, bytes]] | None = None) -> Exchange:
    return Exchange(method, b"/users/1?a=%41", headers or [(b"Host", b"api")], "10.0.0.1")


async def _send(fake: FakeUpstream, ex: Exchange, body: bytes = b"", max_body: int = 1024) -> Got:
    got: Got = []
    done = asyncio.Event()

    def on_done(answer: Whole | None, why: str) -> None:
        got.append((answer, why))
        done.set()

    cancel = WholeSender(lambda: fake, lambda: False).send(
        "green", ex, body, max_body=max_body, done=on_done
    )
    assert cancel is not None
    await asyncio.wait_for(done.wait(), 5)
    return got


async def test_the_request_goes_as_forwarded_and_the_answer_comes_back_whole() -> None:
    fake = FakeUpstream(lambda r: Respond(200, ((b"Content-Type", b"application/json"),), b"{}"))
    got = await _send(
        fake, _exchange("POST", [(b"Host", b"api"), (b"Content-Length", b"3")]), b"abc"
    )
    assert got == [(Whole(200, [(b"Content-Type", b"application/json")], b"{}"), "")]
    request = fake.requests[0]
    assert (request.method, request.target, request.body) == ("POST", b"/users/1?a=%41", b"abc")
    assert (b"Host", b"api") in request.headers
    assert (b"X-Forwarded-For", b"10.0.0.1") in request.headers
    assert fake.in_flight("green") == 0


async def test_a_chunked_request_body_goes_chunked() -> None:
    fake = FakeUpstream(lambda r: Respond(200))
    ex = _exchange("PUT", [(b"Host", b"api"), (b"Transfer-Encoding", b"chunked")])
    await _send(fake, ex, b"hello")
    assert fake.requests[0].body == b"hello"


async def test_a_stale_kept_alive_connection_is_tried_once_more() -> None:
    fake = FakeUpstream(lambda r: Close() if r.attempt == 1 else Respond(204), reused={1})
    got = await _send(fake, _exchange())
    assert got == [(Whole(204, [], b""), "")]
    assert [r.attempt for r in fake.requests] == [1, 2]


async def test_no_second_try_when_the_request_may_not_go_twice() -> None:
    fake = FakeUpstream(lambda r: Close(), reused={1})
    assert await _send(fake, _exchange("POST")) == [(None, "broken")]
    assert len(fake.requests) == 1


async def test_failures_say_why() -> None:
    big = FakeUpstream(lambda r: Respond(200, (), b"x" * 2000))
    assert await _send(big, _exchange(), max_body=1000) == [(None, "too_large")]
    assert big.calls[0].aborted  # cut off, never reused
    invalid = FakeUpstream(lambda r: Invalid())
    assert await _send(invalid, _exchange()) == [(None, "invalid")]
    refused = FakeUpstream(lambda r: Refuse(), refuse={"green"})
    assert await _send(refused, _exchange()) == [(None, "connect")]


async def test_a_busy_release_is_not_called_and_cancel_ends_the_call() -> None:
    requests: list[FakeRequest] = []
    fake = FakeUpstream(lambda r: requests.append(r) or Respond(200), max_in_flight=0)
    sender = WholeSender(lambda: fake, lambda: False)
    got: Got = []
    ex = _exchange()
    kwargs = {"max_body": 10}
    assert sender.send("green", ex, b"", done=lambda a, w: got.append((a, w)), **kwargs) is None
    assert got == [] and not fake.calls
    fake.max_in_flight = None
    cancel = sender.send("green", ex, b"", done=lambda a, w: got.append((a, w)), **kwargs)
    assert cancel is not None
    cancel()
    assert got == [(None, "cancelled")]
    assert fake.calls[0].aborted
    await asyncio.sleep(0)  # the fake's answer comes on the next turn: it is ignored
    assert got == [(None, "cancelled")]
