"""What a release sends is checked as strictly as what a client sends: a malformed or
over-long response, or bytes after a complete one, never reach a client; a body cut by a
reset is never presented as complete; trailer fields stay in the trailer section."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from tests.integration.conftest import (
    StartProxy,
    header_values,
    raw_exchange,
    read_response,
    read_response_and_trailers,
    sample,
)
from tests.integration.test_pipelining import pipelined

ERRORS = "switchback_upstream_errors_total"
GET = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (RST), not a polite FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_bytes_after_a_complete_response_never_answer_another_request(
    switchback: StartProxy, scripted: Any
) -> None:
    """A release answers ``/extra`` with ``Content-Length: 2`` and, in the same write, a
    second response. The client pipelining ``/extra`` and ``/second`` gets ``ok`` and then
    the release's real answer to ``/second`` (on a fresh connection), never ``SMUGGLED``."""

    async def answer(n: int, head: bytes) -> bytes:
        if head.startswith(b"GET /extra "):
            return (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
            )
        return b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"

    release = await scripted(answer)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    answers = await pipelined(
        proxy.port,
        b"GET /extra HTTP/1.1\r\nHost: h\r\n\r\nGET /second HTTP/1.1\r\nHost: h\r\n\r\n",
        2,
    )
    assert [(a[0], a[2]) for a in answers] == [(200, b"ok"), (200, b"second")]
    assert release.connections == 2  # the connection that spoke out of turn was dropped
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="invalid") == 1


@pytest.mark.parametrize("ending", ["reset", "close"])
async def test_a_body_that_ends_with_the_connection_is_complete_only_on_a_clean_close(
    switchback: StartProxy, raw_release: Any, ending: str
) -> None:
    """A response without Content-Length or chunked framing ends when the release closes.
    A clean close (FIN) ends it; a reset cuts it, and the HTTP/1.1 client, which gets it
    chunked, must never receive the last chunk that would make it look complete."""
    body = b"x" * 5000

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
        await writer.drain()
        if ending == "reset":
            reset(writer)
        else:
            writer.close()

    url = (await raw_release(handler)).url
    proxy = await switchback({"releases": {"blue": {"url": url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        if ending == "close":
            status, headers, got = await asyncio.wait_for(read_response(reader), 5)
            assert (status, got) == (200, body)
            assert header_values(headers, "Transfer-Encoding") == ["chunked"]
        else:
            with pytest.raises((asyncio.IncompleteReadError, ConnectionResetError)):
                await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="broken") == (ending == "reset")


@pytest.mark.parametrize("hold", [False, True], ids=["streamed", "inspected"])
async def test_response_trailers_stay_in_the_trailer_section(
    switchback: StartProxy, scripted: Any, hold: bool
) -> None:
    """A chunked JSON response with a trailer ``X-Checksum``: streamed through, or held for
    deprecation inspection, the field reaches the client as a trailer, never in the head
    (RFC 9110 section 6.5.2), and the held body is still inspected."""

    async def answer(n: int, head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b'10\r\n{"user": {"role"\r\n9\r\n: "admin"\r\n2\r\n}}\r\n'
            b"0\r\nX-Checksum: abc\r\n\r\n"
        )

    release = await scripted(answer)
    extra: dict[str, Any] = {"releases": {"blue": {"url": release.url}}}
    if hold:
        extra["deprecations"] = [{"id": "r", "field": "user.role", "deprecated": "2026-06-01"}]
    proxy = await switchback(extra)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        status, headers, body, trailers = await asyncio.wait_for(
            read_response_and_trailers(reader), 5
        )
    finally:
        writer.close()
    assert status == 200
    assert orjson.loads(body) == {"user": {"role": "admin"}}
    assert header_values(headers, "X-Checksum") == []
    assert trailers == [("X-Checksum", "abc")]
    assert bool(header_values(headers, "Deprecation")) == hold


async def test_trailers_the_head_names_in_connection_do_not_reach_the_client(
    switchback: StartProxy, scripted: Any
) -> None:
    """``Connection: X-Hop`` in the head makes ``X-Hop`` hop-by-hop in the trailer section too
    (RFC 9110 section 7.6.1): dropped, while the other trailer fields pass."""

    async def answer(n: int, head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nok\r\n0\r\nX-Hop: secret\r\nX-Checksum: abc\r\n\r\n"
        )

    release = await scripted(answer)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        status, _, body, trailers = await asyncio.wait_for(read_response_and_trailers(reader), 5)
    finally:
        writer.close()
    assert (status, body) == (200, b"ok")
    assert trailers == [("X-Checksum", "abc")]


async def test_a_204_reaches_the_client_without_a_content_length(
    switchback: StartProxy, scripted: Any
) -> None:
    """A release's 204 with ``Content-Length: 8`` (which RFC 9110 section 8.6 forbids): the
    client gets the 204 without it, and the next response on the connection is whole."""

    async def answer(n: int, head: bytes) -> bytes:
        if n == 1:
            return b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"

    release = await scripted(answer)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.write(GET)
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 204 ")
    assert b"content-length" not in head.lower()
    assert (status, body) == (200, b"second")


# -- answers that break HTTP/1.1 ---------------------------------------------------------------

INVALID = {
    "status-line": b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok",
    "not-http": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "length-and-chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    ),
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    "same-length-twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
    "nul-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "bare-cr-in-header": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "obsolete-line-folding": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "unknown-transfer-coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "chunked-not-last": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nabc",
    "over-long-head": b"HTTP/1.1 200 OK\r\nX-Big: "
    + b"a" * 3000
    + b"\r\nContent-Length: 2\r\n\r\nok",
    # One list of codings across the fields (RFC 9110 section 5.3): chunked is not the last.
    "chunked-then-gzip-fields": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    ),
    # Three digits, but not a status (RFC 9110 section 15: 100 to 599).
    "status-below-100": b"HTTP/1.1 099 X\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    "status-above-599": b"HTTP/1.1 600 X\r\nContent-Length: 2\r\n\r\nok",
    # A switch to a protocol the request did not ask for (RFC 9110 section 7.8).
    "101-without-upgrade": (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: evil\r\n\r\n"
    ),
}


@pytest.mark.parametrize("answer", list(INVALID.values()), ids=list(INVALID))
async def test_an_invalid_response_is_a_json_502_and_never_reaches_the_client(
    switchback: StartProxy, scripted: Any, answer: bytes
) -> None:
    async def respond(n: int, head: bytes) -> bytes:
        return answer

    release = await scripted(respond)
    proxy = await switchback(
        {
            "releases": {"blue": {"url": release.url}},
            "limits": {"max_response_head_bytes": 2048},
        }
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 502
        payload = orjson.loads(body)
        assert (payload["error"], payload["release"]) == ("upstream_invalid", "blue")
        assert b"Traceback" not in body
        assert header_values(headers, "X-A") == header_values(headers, "X-Big") == []
        # The same client connection goes on; the release's connection was dropped.
        writer.write(b"GET /again HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 502
    finally:
        writer.close()
    assert release.connections == 2
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="invalid") == 2


@pytest.mark.parametrize("over", [0, 1])
async def test_a_head_at_the_limit_passes_with_a_large_body_in_the_same_read(
    switchback: StartProxy, scripted: Any, over: int
) -> None:
    """The head is measured as its fields (name, value, ": " and CRLF) and the reason phrase,
    when it came in a read larger than the limit: a head of exactly
    ``limits.max_response_head_bytes`` passes, with a body far larger read along with it;
    one byte more is a 502."""
    limit, body = 2048, b"x" * 50_000
    length = b"%d" % len(body)
    pad = limit - len(b"OK") - (len(b"Content-Length") + len(length) + 4) - (len(b"X-Pad") + 4)
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\nX-Pad: %s\r\n\r\n"
        % (length, b"a" * (pad + over))
        + body
    )

    async def respond(n: int, head: bytes) -> bytes:
        return answer

    release = await scripted(respond)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "limits": {"max_response_head_bytes": limit}}
    )
    status, headers, got = await raw_exchange(proxy.port, GET)
    if over:
        assert status == 502
        assert orjson.loads(got)["error"] == "upstream_invalid"
    else:
        assert status == 200
        assert got == body
        assert header_values(headers, "X-Pad") == ["a" * pad]


@pytest.mark.parametrize("pad", [3000, 1000], ids=["over", "within"])
async def test_a_final_head_after_an_interim_one_is_measured_against_the_limit(
    switchback: StartProxy, scripted: Any, pad: int
) -> None:
    """A 103 and the final response in one write: the final head begins in the read of the
    interim one, so what was read while it came does not bound it; it is measured. Over
    ``limits.max_response_head_bytes``: the client gets the 103, then a JSON 502 naming the
    release, without the release's fields. Within: the final response as sent."""
    answer = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * pad + b"\r\nContent-Length: 2\r\n\r\nok"
    )

    async def respond(n: int, head: bytes) -> bytes:
        return answer

    release = await scripted(respond)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "limits": {"max_response_head_bytes": 2048}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        interim = await asyncio.wait_for(read_response(reader), 5)
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert interim[0] == 103
    if pad > 2048:
        assert status == 502
        payload = orjson.loads(body)
        assert (payload["error"], payload["release"]) == ("upstream_invalid", "blue")
        assert header_values(headers, "X-Big") == []
        samples = await proxy.metrics()
        assert sample(samples, ERRORS, release="blue", kind="invalid") == 1
    else:
        assert (status, body) == (200, b"ok")
        assert header_values(headers, "X-Big") == ["a" * pad]


async def endless_release(raw_release: Any, start: bytes) -> tuple[str, Callable[[], int]]:
    """A release answering with ``start``, then one field value streamed for ever (up to 64
    MB): its URL, and how many bytes of that value it has written so far."""
    streamed = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal streamed
        await reader.readuntil(b"\r\n\r\n")
        writer.write(start)
        try:
            while streamed < 64 * 1024 * 1024:
                writer.write(b"a" * 65536)
                streamed += 65536
                await writer.drain()
        except ConnectionError:
            return

    return (await raw_release(handler)).url, lambda: streamed


async def test_a_trailer_field_that_never_ends_is_cut_at_the_limit(
    switchback: StartProxy, raw_release: Any
) -> None:
    """A chunked body, then a trailer field streamed for ever: httptools holds a field until
    it ends, so what is read after the body is bounded as a head. Memory stays bounded; the
    response, whose head is out, is cut off, so the client never takes it for whole."""
    url, streamed = await endless_release(
        raw_release,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Endless: ",
    )
    proxy = await switchback(
        {"releases": {"blue": {"url": url}}, "limits": {"max_response_head_bytes": 2048}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(GET)
        got = await asyncio.wait_for(reader.read(), 20)  # until Switchback closes
    finally:
        writer.close()
    assert got.startswith(b"HTTP/1.1 200 ")
    assert not got.endswith(b"0\r\n\r\n")  # never presented as complete
    # Cut off soon after the limit: what was streamed fits in the sockets' buffers.
    assert streamed() < 8 * 1024 * 1024
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="blue", kind="invalid") == 1


async def test_a_response_head_that_never_ends_is_cut_at_the_limit(
    switchback: StartProxy, raw_release: Any
) -> None:
    """A release streaming an endless header line: memory stays bounded, the client gets a
    502 naming the release once the head passes ``limits.max_response_head_bytes``."""
    url, streamed = await endless_release(raw_release, b"HTTP/1.1 200 OK\r\nX-Endless: ")
    proxy = await switchback({"releases": {"blue": {"url": url}}})
    status, headers, body = await raw_exchange(proxy.port, GET)
    assert status == 502
    assert orjson.loads(body)["error"] == "upstream_invalid"
    # Cut off soon after the limit: what was streamed fits in the sockets' buffers.
    assert streamed() < 8 * 1024 * 1024
