"""Request framing a client controls beyond the head: trailer fields, chunk extensions, an
upgrade that announces a body, transfer codings, the Host field, and a pipelined head cut
short. Each is bounded or refused (a JSON error, the connection closed) before a release can
take it for something else, and a well-framed request still goes through.
"""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from tests.integration.conftest import (
    Proxy,
    Releases,
    StartProxy,
    json_refusal,
    read_response,
    sample,
)
from tests.integration.releases import RecordingRelease

REJECTED = "switchback_rejected_total"
TOO_LARGE = "request_header_fields_too_large"
CHUNKED_POST = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


async def echoing(switchback: StartProxy, recording: RecordingRelease, **extra: Any) -> Proxy:
    return await switchback({"releases": {"blue": {"url": recording.url}}, **extra})


async def answered(proxy: Proxy, data: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(data)
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    return status, body


# -- what follows the head that is not body -------------------------------------------------


async def test_an_endless_trailer_field_is_cut_with_bounded_memory(
    switchback_process: Any, releases: Releases
) -> None:
    """A chunked body whose trailer field never ends (64 MB of one value): llhttp keeps a
    field to itself until it ends, so what is read after the head that is not body is
    bounded as a head is: 431, and memory barely moves."""
    proxy = await switchback_process()
    before = proxy.peak_rss()
    start = CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-Endless: "
    status, _, payload = await json_refusal(proxy.port, start, *[b"a" * (256 * 1024)] * 256)
    assert (status, payload["error"]) == (431, TOO_LARGE)
    assert proxy.peak_rss() - before < 16 * 1024 * 1024


async def test_an_endless_chunk_extension_is_cut(
    switchback: StartProxy, recording: RecordingRelease
) -> None:
    """8 MB of chunk extension before a 1-byte chunk: no body byte, bounded as a head."""
    proxy = await echoing(switchback, recording)
    parts = [CHUNKED_POST + b"1;e=", *[b"a" * 65536] * 128, b"\r\nx\r\n0\r\n\r\n"]
    status, _, payload = await json_refusal(proxy.port, *parts)
    assert (status, payload["error"]) == (431, TOO_LARGE)
    assert recording.received == []  # cut off: never a complete request
    assert sample(await proxy.metrics(), REJECTED, reason="head_size") == 1


async def test_too_many_trailer_fields_are_refused(
    switchback: StartProxy, recording: RecordingRelease
) -> None:
    """5000 small trailer fields (30 KB, under max_head_bytes): over max_headers, a 431."""
    proxy = await echoing(switchback, recording)
    trailers = b"".join(b"t%d: v\r\n" % i for i in range(5000))
    data = CHUNKED_POST + b"1\r\nx\r\n0\r\n" + trailers + b"\r\n"
    status, _, payload = await json_refusal(proxy.port, data)
    assert (status, payload["error"]) == (431, TOO_LARGE)
    assert recording.received == []
    assert sample(await proxy.metrics(), REJECTED, reason="header_count") == 1


async def test_a_chunked_request_with_trailers_goes_through(
    switchback: StartProxy, recording: RecordingRelease
) -> None:
    """Chunks in reads of their own, chunk extensions, and trailer fields within the limits
    (99 fields, the last one 40 KB, in a read of its own)."""
    proxy = await echoing(switchback, recording)
    fields = [b"t%d: v%d\r\n" % (i, i) for i in range(98)] + [b"X-Big: " + b"b" * 40_000 + b"\r\n"]
    parts = [CHUNKED_POST, b"5;ext=1\r\nhello\r\n", b"6\r\n world\r\n", b"0\r\n", *fields, b"\r\n"]
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert (status, body) == (200, b"/a")
    (received,) = recording.received
    assert received.body == b"hello world"
    assert len(received.trailers) == 99
    assert received.trailers[-1] == (b"X-Big", b"b" * 40_000)


# -- an upgrade that announces a body --------------------------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
SMUGGLED_CHUNK = b"%x\r\n%s\r\n0\r\n\r\n" % (len(SMUGGLED), SMUGGLED)


def h2c_post(framing: bytes, body: bytes) -> bytes:
    return (
        b"POST /orders HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n%s\r\n\r\n%s"
        % (framing, body)
    )


@pytest.mark.parametrize(
    "data",
    [
        h2c_post(b"Content-Length: %d" % len(SMUGGLED), SMUGGLED),
        h2c_post(b"Transfer-Encoding: chunked", SMUGGLED_CHUNK),
    ],
    ids=["content-length", "chunked"],
)  # fmt: skip
async def test_an_upgrade_request_with_a_body_is_refused(
    switchback: StartProxy, recording: RecordingRelease, data: bytes
) -> None:
    """curl --http2 style (Upgrade: h2c) on a POST whose body is itself a request: llhttp
    would take the body for the upgraded protocol's bytes, and they would become a request
    of their own. Refused before anything reaches a release."""
    proxy = await echoing(switchback, recording)
    status, _, payload = await json_refusal(proxy.port, data)
    assert (status, payload["error"]) == (400, "bad_request")
    assert "upgrade" in payload["detail"]
    assert recording.received == []
    assert sample(await proxy.metrics(), REJECTED, reason="malformed") == 1


# -- transfer codings ------------------------------------------------------------------------


async def test_a_transfer_coding_other_than_chunked_is_refused_501(
    switchback: StartProxy, recording: RecordingRelease
) -> None:
    """Transfer-Encoding: gzip, chunked (RFC 9112 section 6.1: 501 for a transfer coding not
    understood), rather than forwarded as chunked with the gzip bytes taken for content."""
    proxy = await echoing(switchback, recording)
    coded = gzip.compress(b'{"order": 1}')
    data = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    status, _, payload = await json_refusal(
        proxy.port, data + b"%x\r\n%s\r\n0\r\n\r\n" % (len(coded), coded)
    )
    assert (status, payload["error"]) == (501, "not_implemented")
    assert recording.received == []
    assert sample(await proxy.metrics(), REJECTED, reason="transfer_coding") == 1


# -- Host -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET /a HTTP/1.1\r\nHost: good\r\nHost: evil\r\n\r\n",
        b"GET /a HTTP/1.1\r\nX: y\r\n\r\n",
        b"GET /a HTTP/1.0\r\nHost: good\r\nhost: evil\r\n\r\n",
    ],
    ids=["two-hosts", "no-host", "two-hosts-http10"],
)
async def test_a_request_without_exactly_one_host_is_refused(
    switchback: StartProxy, recording: RecordingRelease, data: bytes
) -> None:
    """RFC 9112 section 3.2: an HTTP/1.1 request with no Host field, or any request with more
    than one, is answered 400."""
    proxy = await echoing(switchback, recording)
    status, _, payload = await json_refusal(proxy.port, data)
    assert (status, payload["error"]) == (400, "bad_request")
    assert recording.received == []


async def test_an_http10_request_without_host_goes_through(
    switchback: StartProxy, recording: RecordingRelease
) -> None:
    proxy = await echoing(switchback, recording)
    assert await answered(proxy, b"GET /old HTTP/1.0\r\n\r\n") == (200, b"/old")
    assert [r.target for r in recording.received] == [b"/old"]


# -- a pipelined head cut short --------------------------------------------------------------


async def test_a_partial_pipelined_head_gets_the_head_timeout(
    switchback: StartProxy, recording: RecordingRelease
) -> None:
    """The start of a second head in the same write as the first request, then nothing:
    the 408 of head_timeout (0.5 s), as for a partial head on its own, not the quiet close of
    keepalive_timeout (4 s)."""
    proxy = await echoing(
        switchback, recording, server={"head_timeout": 0.5, "keepalive_timeout": 4.0}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nX-Par")
        first = await asyncio.wait_for(read_response(reader), 5)
        rest = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    assert (first[0], first[2]) == (200, b"/a")
    assert rest.startswith(b"HTTP/1.1 408 ")  # not the keep-alive timeout's quiet close
    assert [r.target for r in recording.received] == [b"/a"]
