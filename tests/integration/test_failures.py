"""When a release fails: failover when the request never reached it, JSON 502/504 naming the
release otherwise, a cut body never presented as complete, 400 for malformed requests; every
failure counted, no traceback sent, and the proxy serving on afterwards."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

import orjson
import pytest

from tests.integration.conftest import (
    Proxy,
    Releases,
    StartProxy,
    header_values,
    raw_exchange,
    read_response,
    refused_url,
    sample,
)
from tests.integration.helpers_rollout import wait_until

ERRORS = "switchback_upstream_errors_total"
GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def proxy_error(status: int, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The JSON error body the proxy made itself, checked for what every such body needs."""
    assert b"Traceback" not in body
    assert header_values(headers, "Content-Type") == ["application/json"]
    payload: dict[str, Any] = orjson.loads(body)
    assert isinstance(payload.get("detail"), str)
    return payload


async def still_serving(proxy: Proxy) -> None:
    status, _, body = await raw_exchange(proxy.port, b"GET /users/2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    assert orjson.loads(body)["user"]["id"] == "2"


# -- the connection cannot be opened -----------------------------------------------------------


async def test_refused_release_fails_over_to_the_other_one(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {
            "releases": {"green": {"url": refused_url()}},
            "traffic": {"weights": {"blue": 50, "green": 50}, "override_header": "X-Release"},
        }
    )
    payload = b'{"order": 1}'
    request = (
        b"POST /orders HTTP/1.1\r\nHost: h\r\nX-Release: green\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    status, headers, body = await raw_exchange(proxy.port, request)
    assert status == 200
    assert header_values(headers, "X-Served-By") == ["blue"]
    echo = orjson.loads(body)
    assert echo["release"] == "blue"
    assert echo["target"] == "/orders"
    assert echo["body_len"] == len(payload)
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="green", kind="connect") == 1
    assert sample(samples, ERRORS, release="blue", kind="connect") == 0
    assert sample(samples, "switchback_requests_total", release="blue", code="200") == 1


async def test_refused_release_without_a_fallback_is_a_json_502(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {
            "releases": {"green": {"url": refused_url()}},
            "traffic": {"weights": {"blue": 0, "green": 100}},
        }
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for _ in range(2):  # the client's connection stays usable
            writer.write(GET)
            status, headers, body = await asyncio.wait_for(read_response(reader), 5)
            assert status == 502
            payload = proxy_error(status, headers, body)
            assert payload["error"] == "upstream_unavailable"
            assert payload["release"] == "green"
    finally:
        writer.close()
    assert releases.blue.seen == []  # blue carries no traffic: it is not a fallback
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="green", kind="connect") == 2
    assert sample(samples, "switchback_requests_total", release="green", code="502") == 2


# -- the release does not answer in time -------------------------------------------------------


async def test_slow_release_is_a_json_504(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback({"upstream": {"response_timeout": 0.4}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        started = time.monotonic()
        writer.write(b"GET /slow/1.5 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        elapsed = time.monotonic() - started
        assert status == 504
        payload = proxy_error(status, headers, body)
        assert payload["error"] == "upstream_timeout"
        assert payload["release"] == "blue"
        assert 0.35 < elapsed < 1.45  # the release itself would answer at 1.5 s
        # The same client connection serves the next request.
        writer.write(b"GET /users/3 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
        assert orjson.loads(body)["user"]["id"] == "3"
    finally:
        writer.close()
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="timeout") == 1
    assert sample(samples, "switchback_requests_total", release="blue", code="504") == 1


async def test_response_timeout_covers_the_head_only(switchback: StartProxy, scripted: Any) -> None:
    """A body that streams for longer than the timeout is not cut once the head arrived."""

    async def trickle(n: int, head: bytes) -> list[bytes | float]:
        parts: list[bytes | float] = [b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"]
        for byte in b"trickled":
            parts += [0.1, bytes([byte])]
        return parts

    release = await scripted(trickle)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "upstream": {"response_timeout": 0.3}}
    )
    status, _, body = await raw_exchange(proxy.port, GET)
    assert (status, body) == (200, b"trickled")


# -- the release breaks off --------------------------------------------------------------------


CUT_ANSWERS = {
    # (what the release sends before it hangs up, the body bytes the client may see)
    "content-length": (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        + b"a" * 999,
        b"a" * 999,
    ),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e7\r\n" + b"a" * 999 + b"\r\n",
        b"a" * 999,
    ),
}


def dechunk(wire: bytes) -> tuple[bytes, bool]:
    """The data of a chunked body, and whether its last (zero-size) chunk came."""
    data, i = bytearray(), 0
    while (eol := wire.find(b"\r\n", i)) != -1:
        size = int(wire[i:eol], 16)
        if size == 0:
            return bytes(data), True
        data += wire[eol + 2 : eol + 2 + size]
        i = eol + 2 + size + 2
    return bytes(data), False


@pytest.mark.parametrize("how", ["fin", "reset"])
@pytest.mark.parametrize("framing", list(CUT_ANSWERS))
async def test_body_cut_by_the_release_is_never_presented_complete(
    switchback: StartProxy, raw_release: Any, framing: str, how: str
) -> None:
    """The release sends all but the end of a body (one byte short of its Content-Length,
    or every chunk but the last) and hangs up: the client gets the bytes that came, then its
    connection ends without anything that could complete the body."""
    answer, sent_body = CUT_ANSWERS[framing]

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        if how == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    release = await raw_release(handler)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    got = bytearray()
    try:
        writer.write(GET)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        try:
            while data := await asyncio.wait_for(reader.read(65536), 5):
                got.extend(data)
        except ConnectionResetError:
            pass
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    if framing == "content-length":
        assert b"Content-Length: 1000" in head
        assert bytes(got) == sent_body  # all that came, and the connection ended short
    else:
        assert b"Transfer-Encoding: chunked" in head
        data, ended = dechunk(bytes(got))
        assert (data, ended) == (sent_body, False)  # never the last chunk
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="broken") == 1
    assert sample(samples, "switchback_in_flight_requests", release="blue") == 0


async def test_release_closing_without_an_answer_is_a_json_502(
    switchback: StartProxy, scripted: Any
) -> None:
    async def hang_up(n: int, head: bytes) -> None:
        return None

    release = await scripted(hang_up)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    status, headers, body = await raw_exchange(proxy.port, GET)
    assert status == 502
    payload = proxy_error(status, headers, body)
    assert payload["error"] == "upstream_broken"
    assert payload["release"] == "blue"
    assert len(release.heads) == 1  # a fresh connection: the request is not sent twice
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="broken") == 1


async def one_per_connection(n: int, head: bytes) -> bytes | None:
    """Answers the first request on a connection; closes under the second, unanswered."""
    if n > 1:
        return None
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.parametrize(
    "request_bytes",
    [
        GET,
        b"PUT /x/1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
        b"DELETE /x/1 HTTP/1.1\r\nHost: h\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nIdempotency-Key: k-1\r\nContent-Length: 3\r\n\r\nabc",
    ],
    ids=["GET", "PUT", "DELETE", "POST-idempotency-key"],
)
async def test_stale_keep_alive_connection_is_retried_on_a_fresh_one(
    switchback: StartProxy, scripted: Any, request_bytes: bytes
) -> None:
    """The release closes an idle keep-alive connection just as a request goes out on it:
    the proxy, still holding the whole request, sends an idempotent one once more on a new
    connection."""
    release = await scripted(one_per_connection)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    for _ in range(3):
        status, _, body = await raw_exchange(proxy.port, request_bytes)
        assert (status, body) == (200, b"ok")
    assert release.connections == 3
    assert len(release.heads) == 5  # 3 answered + 2 that met a closing connection
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="broken") == 0


async def test_non_idempotent_request_is_never_sent_twice(
    switchback: StartProxy, scripted: Any
) -> None:
    """A POST that met a closing keep-alive connection may have been acted on by the app
    (RFC 9110, 9.2.2: a proxy must not retry it): the client gets a 502, the app saw it once."""
    release = await scripted(one_per_connection)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    post = b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    assert (await raw_exchange(proxy.port, post))[0] == 200
    status, headers, body = await raw_exchange(proxy.port, post)
    assert status == 502
    assert proxy_error(status, headers, body)["error"] == "upstream_broken"
    assert len(release.heads) == 2
    assert release.connections == 1
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="broken") == 1


async def test_head_is_not_held_back_until_the_first_body_byte(
    switchback: StartProxy, scripted: Any
) -> None:
    """A release that sends its head at once and the body later (a long poll, an event
    stream): the client sees the head at once."""

    async def late_body(n: int, head: bytes) -> list[bytes | float]:
        return [
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
            b"\r\n",
            1.5,
            b"6\r\nevent1\r\n0\r\n\r\n",
        ]

    release = await scripted(late_body)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "upstream": {"response_timeout": 0.5}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
        assert head.startswith(b"HTTP/1.1 200 ")
        # The response timeout (0.5 s) covers the head only: the late body still arrives.
        assert await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5) == (
            b"6\r\nevent1\r\n0\r\n\r\n"
        )
    finally:
        writer.close()


# -- the client breaks the rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: h\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n",
    ],
    ids=[
        "header-line",
        "content-length",
        "chunk-size",
        "connect",
        "version",
        "method",
        "target-space",
    ],
)
async def test_malformed_request_is_a_json_400(
    switchback: StartProxy, releases: Releases, request_bytes: bytes
) -> None:
    proxy = await switchback()
    status, headers, body = await raw_exchange(proxy.port, request_bytes)
    assert status == 400
    assert proxy_error(status, headers, body)["error"] == "bad_request"
    assert header_values(headers, "Connection") == ["close"]
    assert all(seen["method"] != "CONNECT" for seen in releases.blue.seen)
    await still_serving(proxy)


async def test_malformed_body_is_cut_off_at_the_release(
    switchback: StartProxy, raw_release: Any
) -> None:
    """The head was fine and went on; the body turns out malformed later: the client gets a
    400, and the release, which has the head and the first chunk, sees its connection end
    without the rest: it never takes the truncated body for a complete one."""
    got_chunk = asyncio.Event()
    received = bytearray()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)
            if b"5\r\nhello\r\n" in received:
                got_chunk.set()

    release = await raw_release(handler)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"POST /orders HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        await writer.drain()
        await asyncio.wait_for(got_chunk.wait(), 5)  # head and first chunk at the release
        writer.write(b"not-hex\r\n")
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert status == 400
    assert proxy_error(status, headers, body)["error"] == "bad_request"
    await wait_until(lambda: bool(release.ended), 5, "the release's connection to end")
    assert release.ended == ["served"]  # read to its end: the proxy closed it
    assert not received.endswith(b"0\r\n\r\n")  # never the end of a complete body
    assert proxy.runtime.pools["blue"].in_flight == 0


async def test_requests_before_a_malformed_one_are_answered(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"GET /slow/0.2 HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: h\r\nBad Header Line\r\n\r\n"
        )
        answers = [await asyncio.wait_for(read_response(reader), 5) for _ in range(3)]
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    assert [a[0] for a in answers] == [200, 200, 400]
    assert orjson.loads(answers[1][2])["target"] == "/second"
    assert proxy_error(*answers[2])["error"] == "bad_request"


async def test_client_resetting_mid_request_frees_its_slot(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    pool = proxy.runtime.pools["blue"]
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.sendall(b"GET /slow/1 HTTP/1.1\r\nHost: h\r\n\r\n")
    await wait_until(lambda: bool(releases.blue.seen), 5, "the request at the release")
    samples = await proxy.metrics()
    assert sample(samples, "switchback_in_flight_requests", release="blue") == 1
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # a reset, not a polite close
    await wait_until(lambda: pool.in_flight == 0, 0.9, "the slot freed before the answer")
    samples = await proxy.metrics()
    assert sample(samples, "switchback_in_flight_requests", release="blue") == 0
    _, status = await proxy.admin_call("GET", "/status")
    assert status["releases"]["blue"]["in_flight"] == 0
    await still_serving(proxy)


@pytest.mark.parametrize("count", [1, 3])
async def test_half_closed_client_gets_its_answers_then_the_connection_closes(
    switchback: StartProxy, releases: Releases, count: int
) -> None:
    """A client that sends its requests and shuts down its sending side (HTTP/1.0 tools,
    netcat) is owed the responses; after them, the proxy closes its side too."""
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /slow/0.2 HTTP/1.1\r\nHost: h\r\n\r\n" * count)
        writer.write_eof()
        for _ in range(count):
            status, _, body = await asyncio.wait_for(read_response(reader), 5)
            assert (status, orjson.loads(body)["slow"]) == (200, True)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed: not kept idle
    finally:
        writer.close()
    listener = proxy.runtime.listener
    await wait_until(lambda: not listener.connections, 2, "the connection gone")


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except TimeoutError:
        return False


@pytest.mark.parametrize("sent", [b"", b"GET /slow-loris HT", b"GET / HTTP/1.1\r\nHost: h\r\n"])
async def test_idle_or_stalled_client_connections_are_closed(
    switchback: StartProxy, releases: Releases, sent: bytes
) -> None:
    """A connection that never completes a request head (nothing sent, or a head trickling
    in) is closed after the head timeout instead of being held for ever: silently when
    nothing came, with a JSON 408 when part of a head did."""
    proxy = await switchback({"server": {"head_timeout": 0.3}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(sent)
        await writer.drain()
        if sent:
            status, headers, body = await asyncio.wait_for(read_response(reader), 3)
            assert status == 408
            assert proxy_error(status, headers, body)["error"] == "request_timeout"
            assert header_values(headers, "Connection") == ["close"]
        assert await closed_within(reader, 3.0)
    finally:
        writer.close()
    assert releases.blue.seen == []
    samples = await proxy.metrics()
    expected = 1 if sent else 0
    assert sample(samples, "switchback_rejected_total", reason="head_timeout") == expected
    await still_serving(proxy)


async def test_requests_queued_behind_a_vanished_client_never_reach_the_release(
    switchback: StartProxy, releases: Releases
) -> None:
    """A client pipelines requests and resets the connection while the first is served:
    the ones behind it are not sent to the release for nobody (a POST would be acted on)."""
    proxy = await switchback()
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.sendall(
        b"GET /slow/0.4 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}"
        b"GET /third HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    await wait_until(lambda: bool(releases.blue.seen), 5, "the first request at the release")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    # Once the first exchange is over and the connection gone, nothing more can be sent.
    runtime = proxy.runtime
    await wait_until(
        lambda: runtime.pools["blue"].in_flight == 0 and not runtime.listener.connections,
        5,
        "the exchange over and the connection gone",
    )
    assert [s["target"] for s in releases.blue.seen] == ["/slow/0.4"]
    samples = await proxy.metrics()
    # Requests that never reached a release are counted under none.
    assert not [key for key in samples if dict(key[1]).get("release") == ""]
    assert sample(samples, "switchback_in_flight_requests", release="blue") == 0
    await still_serving(proxy)
