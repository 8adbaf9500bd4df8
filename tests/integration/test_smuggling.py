"""Request smuggling: where a client's framing is ambiguous, Switchback refuses it (400) or
frames it exactly as the release does. Never may the release see a request the client's
answers do not account for.

The release echoes each request's target, so the answers a client gets name, in order,
every request the release received; a smuggled request would show up on the release's side
only, or answer another request.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.conftest import StartProxy, read_response
from tests.integration.releases import RecordingRelease

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


def post(*fields: bytes, body: bytes) -> bytes:
    head = b"POST /first HTTP/1.1\r\nHost: h\r\n" + b"".join(f + b"\r\n" for f in fields)
    return head + b"\r\n" + body


CASES = {
    "cl-te": post(
        b"Content-Length: 6", b"Transfer-Encoding: chunked", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-cl": post(
        b"Transfer-Encoding: chunked", b"Content-Length: 3", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-obfuscated": post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n" + SMUGGLED),
    "te-space-before-colon": post(
        b"Transfer-Encoding : chunked", b"Content-Length: 5", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-tab": post(b"Transfer-Encoding:\tchunked", body=b"0\r\n\r\n" + SMUGGLED),
    "te-twice": post(
        b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity", body=b"0\r\n\r\n" + SMUGGLED
    ),
    "te-not-last": post(b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n" + SMUGGLED),
    "te-folded": post(b"Transfer-Encoding:", b" chunked", body=b"0\r\n\r\n" + SMUGGLED),
    "cl-twice": post(b"Content-Length: 0", b"Content-Length: 37", body=SMUGGLED),
    "cl-list": post(b"Content-Length: 0, 37", body=SMUGGLED),
    "cl-plus": post(b"Content-Length: +37", body=SMUGGLED),
    "cl-hex": post(b"Content-Length: 0x25", body=SMUGGLED),
    "chunk-size-overflow": post(
        b"Transfer-Encoding: chunked", body=b"10000000000000000\r\nx\r\n0\r\n\r\n" + SMUGGLED
    ),
    "chunk-size-space": post(b"Transfer-Encoding: chunked", body=b"0 \r\n\r\n" + SMUGGLED),
    "chunk-bare-lf": post(b"Transfer-Encoding: chunked", body=b"0\n\n" + SMUGGLED),
    "bare-lf-head": b"POST /first HTTP/1.1\nHost: h\nContent-Length: 0\n\n" + SMUGGLED,
    "http10-chunked": (
        b"POST /first HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "nul-in-header": post(b"X-A: a\x00b", b"Content-Length: 0", body=SMUGGLED),
}


@pytest.mark.parametrize("data", list(CASES.values()), ids=list(CASES))
async def test_ambiguous_framing_is_refused_or_framed_as_the_release_frames_it(
    switchback: StartProxy, recording: RecordingRelease, data: bytes
) -> None:
    proxy = await switchback({"releases": {"blue": {"url": recording.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    answers: list[tuple[int, bytes]] = []
    try:
        writer.write(data)
        writer.write_eof()
        while True:
            try:
                status, _, body = await asyncio.wait_for(read_response(reader), 5)
            except (asyncio.IncompleteReadError, ConnectionResetError):
                break
            answers.append((status, body))
    finally:
        writer.close()
    from_release = [body for status, body in answers if status != 400]
    assert from_release == [r.target for r in recording.received]
    assert all(status in (200, 400) for status, _ in answers)
    if b"/smuggled" in from_release:  # read as two requests: only if both sides agree
        assert [r.target for r in recording.received] == [b"/first", b"/smuggled"]
