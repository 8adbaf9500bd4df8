"""What reaches the release is what the client sent, and what reaches the client is what the
release answered: targets, methods, bodies and headers, byte for byte, over real sockets."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import socket
import time
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import (
    Releases,
    StartProxy,
    header_values,
    raw_exchange,
    read_response,
)

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
    "trailer",
}
ADDED_BY_PROXY = {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}

LONG_TARGET = "/long/" + "a%2Fb" * 800 + "?" + "&".join(f"k{i}=v%20{i}" for i in range(300))


def names(headers: list[Any]) -> set[str]:
    return {k.lower() for k, _ in headers}


async def read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]]]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = head.decode("latin-1").split("\r\n")
    headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
    return int(lines[0].split(" ")[1]), headers


async def echo(port: int, request: bytes) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    status, headers, body = await raw_exchange(port, request)
    return status, headers, orjson.loads(body)


# -- request target and method -------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/a//b/../c?x=1&x=2&y",
        "/%7Euser/%2F%2e%2E/?q=%20+",
        "/x?",
        "/a/./b",
        "/p?b=2&a=1&a=3",
        "/",
        LONG_TARGET,
    ],
)
async def test_request_target_reaches_the_release_byte_for_byte(
    switchback: StartProxy, releases: Releases, target: str
) -> None:
    proxy = await switchback()
    request = f"GET {target} HTTP/1.1\r\nHost: api.example\r\n\r\n".encode()
    status, _, body = await echo(proxy.port, request)
    assert status == 200
    assert body["target"] == target
    assert [seen["target"] for seen in releases.blue.seen] == [target]


async def test_a_request_head_split_across_many_packets_arrives_whole(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    target = "/split/%41%42?" + "&".join(f"p{i}={i}" for i in range(40))
    request = (
        f"GET {target} HTTP/1.1\r\nHost: api.example\r\nX-Long-Header: {'v' * 300}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for i in range(0, len(request), 7):
            writer.write(request[i : i + 7])
            await writer.drain()
            await asyncio.sleep(0)
        status, _, raw = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    body = orjson.loads(raw)
    assert status == 200
    assert body["target"] == target
    assert header_values(body["headers"], "X-Long-Header") == ["v" * 300]


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE"])
async def test_method_reaches_the_release(
    switchback: StartProxy, releases: Releases, method: str
) -> None:
    proxy = await switchback()
    payload = b'{"name": "x"}'
    request = (
        f"{method} /things/1 HTTP/1.1\r\nHost: api.example\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    status, _, body = await echo(proxy.port, request)
    assert status == 200
    assert body["method"] == method
    assert body["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert releases.blue.seen[-1]["method"] == method


# -- request body ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65_536, 300 * 1024 + 7])
async def test_fixed_length_body_reaches_the_release_intact(
    switchback: StartProxy, releases: Releases, size: int
) -> None:
    proxy = await switchback()
    payload = os.urandom(size)
    head = f"POST /upload-echo HTTP/1.1\r\nHost: h\r\nContent-Length: {size}\r\n\r\n"
    status, _, body = await echo(proxy.port, head.encode() + payload)
    assert status == 200
    assert (body["body_len"], body["body_sha256"]) == (size, hashlib.sha256(payload).hexdigest())
    assert header_values(body["headers"], "Content-Length") == [str(size)]


@pytest.mark.parametrize("sizes", [[], [1], [10, 4096, 1, 70_000], [65_536] * 6])
async def test_chunked_body_reaches_the_release_intact(
    switchback: StartProxy, releases: Releases, sizes: list[int]
) -> None:
    proxy = await switchback()
    pieces = [os.urandom(n) for n in sizes]
    wire = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    head = b"POST /chunks HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, body = await echo(proxy.port, head + wire)
    payload = b"".join(pieces)
    assert status == 200
    assert (body["body_len"], body["body_sha256"]) == (
        len(payload),
        hashlib.sha256(payload).hexdigest(),
    )
    # The proxy's own framing: one Transfer-Encoding, no Content-Length.
    assert header_values(body["headers"], "Transfer-Encoding") == ["chunked"]
    assert header_values(body["headers"], "Content-Length") == []


# -- request headers ---------------------------------------------------------------------------


async def test_host_header_reaches_the_release_as_received(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    request = b"GET /h HTTP/1.1\r\nHost: Api.Example.COM:8443\r\n\r\n"
    _, _, body = await echo(proxy.port, request)
    assert header_values(body["headers"], "Host") == ["Api.Example.COM:8443"]
    assert header_values(body["headers"], "X-Forwarded-Host") == ["Api.Example.COM:8443"]


async def test_end_to_end_headers_keep_their_order_case_and_repeats(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    request = (
        b"GET /h HTTP/1.1\r\nHost: h\r\nX-B: 2\r\nx-a: 1\r\nAccept: text/html\r\n"
        b"Accept: application/json\r\nX-Empty:\r\nCookie: a=1; b=2\r\n\r\n"
    )
    _, _, body = await echo(proxy.port, request)
    own = [h for h in body["headers"] if h[0].lower() not in ADDED_BY_PROXY]
    assert own == [
        ["Host", "h"],
        ["X-B", "2"],
        ["x-a", "1"],
        ["Accept", "text/html"],
        ["Accept", "application/json"],
        ["X-Empty", ""],
        ["Cookie", "a=1; b=2"],
    ]


@pytest.mark.parametrize(
    "connection",
    [
        [b"Connection: keep-alive, X-Secret"],
        [b"Connection: X-Secret"],
        [b"Connection: keep-alive", b"Connection: X-Secret"],
        [b"Connection: close, X-Secret"],
    ],
    ids=["one-header", "only-token", "two-headers", "close"],
)
async def test_hop_by_hop_request_headers_do_not_reach_the_release(
    switchback: StartProxy, releases: Releases, connection: list[bytes]
) -> None:
    proxy = await switchback()
    request = (
        b"GET /hop HTTP/1.1\r\nHost: h\r\n"
        + b"".join(c + b"\r\n" for c in connection)
        + b"Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
        b"Upgrade: foo/2\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n"
        b"X-Secret: for-the-next-hop-only\r\nX-Keep: yes\r\n\r\n"
    )
    status, _, body = await echo(proxy.port, request)
    assert status == 200
    got = names(body["headers"])
    assert got - ADDED_BY_PROXY == {"host", "x-keep"}
    assert not got & (HOP_BY_HOP | {"x-secret"})


async def test_forwarded_headers_are_appended(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback()
    request = (
        b"GET /xff HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 203.0.113.7\r\n"
        b"X-Forwarded-For: 198.51.100.1, 10.0.0.1\r\nX-Forwarded-Proto: https\r\n"
        b"X-Forwarded-Host: evil.example\r\n\r\n"
    )
    _, _, body = await echo(proxy.port, request)
    headers = body["headers"]
    assert header_values(headers, "X-Forwarded-For") == [
        "203.0.113.7, 198.51.100.1, 10.0.0.1, 127.0.0.1"
    ]
    # Not trusted by default: the proxy states what it saw itself.
    assert header_values(headers, "X-Forwarded-Proto") == ["http"]
    assert header_values(headers, "X-Forwarded-Host") == ["shop.example"]


async def test_forwarded_for_is_the_peer_when_the_client_sent_none(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    _, _, body = await echo(proxy.port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert header_values(body["headers"], "X-Forwarded-For") == ["127.0.0.1"]


# -- response ----------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [{"blue": 100, "green": 0}, {"blue": 0, "green": 100}])
async def test_served_by_names_the_release_that_answered(
    switchback: StartProxy, releases: Releases, weights: dict[str, int]
) -> None:
    proxy = await switchback({"traffic": {"weights": weights}})
    status, headers, body = await echo(proxy.port, b"GET /who HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    assert header_values(headers, "X-Served-By") == [body["release"]]
    assert header_values(headers, "X-Release") == [body["release"]]
    assert releases[body["release"]].seen


async def test_served_by_can_be_turned_off(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback({"traffic": {"served_by_header": False}})
    status, headers, _ = await echo(proxy.port, b"GET /who HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    assert header_values(headers, "X-Served-By") == []


async def test_compressed_response_bytes_are_the_releases(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(releases.blue.url + "/gzip") as direct:
            expected = await direct.read()
        async with session.get(proxy.url + "/gzip") as resp:
            got = await resp.read()
            assert resp.headers["Content-Encoding"] == "gzip"
            assert resp.headers["Content-Length"] == str(len(expected))
    assert got == expected
    assert orjson.loads(gzip.decompress(got))["user"]["role"] == "admin"


async def test_head_response_has_no_body_and_the_connection_goes_on(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"HEAD /users/7 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, headers = await read_head(reader)
        assert status == 200
        writer.write(b"GET /users/7 HTTP/1.1\r\nHost: h\r\n\r\n")
        # The very next bytes are the GET's response: the HEAD's carried no body.
        status2, headers2, body2 = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert status2 == 200
    assert orjson.loads(body2)["user"]["id"] == "7"
    assert header_values(headers, "Content-Length") == [str(len(body2))]
    assert header_values(headers, "Transfer-Encoding") == []
    assert [s["method"] for s in releases.blue.seen] == ["HEAD", "GET"]


async def test_head_of_a_chunked_resource_has_no_body(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"HEAD /stream/5000 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _ = await read_head(reader)
        writer.write(b"GET /users/8 HTTP/1.1\r\nHost: h\r\n\r\n")
        status2, _, body2 = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert (status, status2) == (200, 200)
    assert orjson.loads(body2)["user"]["id"] == "8"


@pytest.mark.parametrize("code", [204, 304])
async def test_no_body_statuses_keep_the_connection_usable(
    switchback: StartProxy, releases: Releases, code: int
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(f"GET /status/{code} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        status, headers = await read_head(reader)
        writer.write(b"GET /users/9 HTTP/1.1\r\nHost: h\r\n\r\n")
        status2, _, body2 = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert status == code
    assert header_values(headers, "Transfer-Encoding") == []
    assert header_values(headers, "X-Served-By") == ["blue"]
    assert status2 == 200
    assert orjson.loads(body2)["user"]["id"] == "9"


BODY_UNTIL_CLOSE = bytes(range(256)) * 400


async def until_close(n: int, head: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n" + BODY_UNTIL_CLOSE


async def test_body_that_ends_when_the_release_closes_reaches_an_http11_client(
    switchback: StartProxy, scripted: Any
) -> None:
    release = await scripted(until_close)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for _ in range(2):  # the client's connection stays usable
            writer.write(b"GET /eof HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers, body = await asyncio.wait_for(read_response(reader), 5)
            assert status == 200
            assert header_values(headers, "Transfer-Encoding") == ["chunked"]
            assert body == BODY_UNTIL_CLOSE
    finally:
        writer.close()
    assert release.connections == 2


async def test_body_that_ends_when_the_release_closes_reaches_an_http10_client(
    switchback: StartProxy, scripted: Any
) -> None:
    release = await scripted(until_close)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /eof HTTP/1.0\r\nHost: h\r\n\r\n")
        status, headers = await read_head(reader)
        body = await asyncio.wait_for(reader.read(), 5)  # until the proxy closes
    finally:
        writer.close()
    assert status == 200
    assert header_values(headers, "Transfer-Encoding") == []
    assert body == BODY_UNTIL_CLOSE


HOP_RESPONSE_CHUNKED = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive, X-Secret-Resp\r\n"
    b"Keep-Alive: timeout=5, max=100\r\nX-Secret-Resp: 1\r\nProxy-Connection: keep-alive\r\n"
    b"Upgrade: h2c\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\nX-Keep: yes\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
)
HOP_RESPONSE_LENGTH = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: X-Secret-Resp\r\n"
    b"Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nX-Secret-Resp: 1\r\n"
    b"Proxy-Connection: keep-alive\r\nProxy-Authenticate: Basic\r\n"
    b"Proxy-Authentication-Info: nextnonce=abc\r\nX-Keep: yes\r\nContent-Length: 11\r\n\r\n"
    b"hello world"
)


@pytest.mark.parametrize("answer", [HOP_RESPONSE_CHUNKED, HOP_RESPONSE_LENGTH])
async def test_hop_by_hop_response_headers_do_not_reach_the_client(
    switchback: StartProxy, scripted: Any, answer: bytes
) -> None:
    async def script(n: int, head: bytes) -> bytes:
        return answer

    release = await scripted(script)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for _ in range(2):
            writer.write(b"GET /hop HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers, body = await asyncio.wait_for(read_response(reader), 5)
            assert status == 200
            assert body == b"hello world"
            got = names(headers)
            assert not got & {"keep-alive", "x-secret-resp", "proxy-connection", "upgrade"}
            assert not got & {"trailer", "connection"}
            assert got - {"transfer-encoding", "content-length"} == {
                "content-type",
                "x-keep",
                "x-served-by",
            }
    finally:
        writer.close()
    assert release.connections == 1  # and the release's keep-alive was kept


# -- connections -------------------------------------------------------------------------------


async def test_keep_alive_on_both_sides(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        for i in range(6):
            writer.write(f"GET /ka/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
            status, headers, body = await asyncio.wait_for(read_response(reader), 5)
            assert status == 200
            assert orjson.loads(body)["target"] == f"/ka/{i}"
            assert header_values(headers, "Connection") == []
    finally:
        writer.close()
    assert len(releases.blue.seen) == 6
    assert len(releases.blue.peers) == 1


async def test_connection_close_from_the_client_is_honoured(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /bye HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        status, headers, _ = await asyncio.wait_for(read_response(reader), 5)
        rest = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert status == 200
    assert header_values(headers, "Connection") == ["close"]
    assert rest == b""  # closed by the proxy


async def test_pipelined_requests_are_answered_in_order(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    payload = os.urandom(20_000)
    batch = (
        b"GET /slow/0.3 HTTP/1.1\r\nHost: h\r\n\r\n"
        + f"POST /second HTTP/1.1\r\nHost: h\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        + payload
        + b"GET /third HTTP/1.1\r\nHost: h\r\n\r\n"
        + b"GET /users/4 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(batch)
        answers = [await asyncio.wait_for(read_response(reader), 5) for _ in range(4)]
    finally:
        writer.close()
    assert [a[0] for a in answers] == [200, 200, 200, 200]
    assert orjson.loads(answers[0][2]) == {"release": "blue", "slow": True}
    second = orjson.loads(answers[1][2])
    assert second["target"] == "/second"
    assert second["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert orjson.loads(answers[2][2])["target"] == "/third"
    assert orjson.loads(answers[3][2])["user"]["id"] == "4"


# -- interim responses ---------------------------------------------------------------------------


async def echo_body(n: int, head: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_100_continue_reaches_an_http11_client(switchback: StartProxy, scripted: Any) -> None:
    release = await scripted(echo_body)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"POST /big HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        # The client holds its body back until the release says go on.
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert (status, body) == (200, b"ok")


async def test_no_interim_response_reaches_an_http10_client(
    switchback: StartProxy, scripted: Any
) -> None:
    async def early_hints(n: int, head: bytes) -> bytes:
        return (
            b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )

    release = await scripted(early_hints)
    proxy = await switchback({"releases": {"blue": {"url": release.url}}})
    for version, interim in ((b"1.1", True), (b"1.0", False)):
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(b"GET /page HTTP/%s\r\nHost: h\r\nConnection: close\r\n\r\n" % version)
            answer = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
        # An HTTP/1.0 client would take a 1xx for the final response (RFC 9110, 15.2).
        assert answer.startswith(b"HTTP/1.1 103 Early Hints\r\n") is interim
        assert b"HTTP/1.1 200 OK\r\n" in answer


# -- with response inspection on -----------------------------------------------------------------

INSPECT = {
    "deprecations": [{"id": "user-role", "field": "user.role", "deprecated": "2026-06-01"}],
    "telemetry": {"max_body_bytes": 4096},
}


@pytest.mark.parametrize("path", ["/users/5", "/gzip", "/items"])
async def test_inspected_responses_reach_the_client_byte_for_byte(
    switchback: StartProxy, releases: Releases, path: str
) -> None:
    proxy = await switchback(INSPECT)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(releases.blue.url + path) as direct:
            expected = await direct.read()
        async with session.get(proxy.url + path) as resp:
            got = await resp.read()
            deprecation = resp.headers.get("Deprecation")
    assert got == expected
    # The inspection did run: user.role is in /users/5 and /gzip (decoded), not in /items.
    assert (deprecation is not None) is (path != "/items")


def json_in_pieces(pieces: list[bytes], pause: float) -> Any:
    async def script(n: int, head: bytes) -> list[bytes | float]:
        parts: list[bytes | float] = [
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        ]
        for piece in pieces:
            parts += [b"%x\r\n%s\r\n" % (len(piece), piece), pause]
        parts.append(b"0\r\n\r\n")
        return parts

    return script


async def test_inspected_chunked_body_is_held_then_sent_whole(
    switchback: StartProxy, scripted: Any
) -> None:
    pieces = [b'{"user": {"id": 1, ', b'"role": "admin", ', b'"name": "' + b"n" * 500 + b'"}}']
    release = await scripted(json_in_pieces(pieces, 0.05))
    proxy = await switchback({**INSPECT, "releases": {"blue": {"url": release.url}}})
    status, headers, body = await raw_exchange(proxy.port, b"GET /u HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    assert body == b"".join(pieces)
    assert header_values(headers, "Deprecation") == ["@1780272000"]


async def test_body_over_the_inspection_cap_streams_on_uninspected(
    switchback: StartProxy, scripted: Any
) -> None:
    pieces = [b'{"user": {"role": "admin", "blob": "'] + [b"x" * 1500] * 8 + [b'"}}']
    release = await scripted(json_in_pieces(pieces, 0.02))
    proxy = await switchback({**INSPECT, "releases": {"blue": {"url": release.url}}})
    status, headers, body = await raw_exchange(proxy.port, b"GET /u HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    assert body == b"".join(pieces)
    assert header_values(headers, "Deprecation") == []  # past the cap: not inspected


# -- back-pressure -------------------------------------------------------------------------------

FIRST_SIZES = range(600_000, 4_600_000, 200_000)
LAST_PART = 250_000  # one read from the release (at most 256 KiB)


async def in_two_parts(n: int, head: bytes) -> bytes | list[bytes | float]:
    """/big/<first>: a response whose last 250 kB come 0.05 s after the rest."""
    path = head.split(b" ")[1]
    if not path.startswith(b"/big/"):
        return b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall"
    first = int(path.rsplit(b"/", 1)[1])
    head_bytes = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (first + LAST_PART)
    return [head_bytes + b"a" * first, 0.05, b"z" * LAST_PART]


def stalled_download(port: int, first: int) -> bytes:
    """GET /big/<first> with a minimal receive buffer, reading nothing for a while: the bytes
    pile up in the proxy, which must hold the release back, then everything is read."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /big/%d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % first)
        time.sleep(0.08)
        data = bytearray()
        while chunk := sock.recv(1 << 16):
            data += chunk
        return bytes(data)


async def test_a_slow_client_leaves_the_release_connection_usable(
    switchback: StartProxy, scripted: Any
) -> None:
    """The release connection that carried a response to a client slower than the release
    goes back to the pool; the next request on it is answered at once, not after a response
    timeout. (Whether the response ends while the proxy holds the release back depends on the
    kernel's socket buffers: a range of sizes covers them.)"""
    release = await scripted(in_two_parts)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "upstream": {"response_timeout": 0.5}}
    )
    for first in FIRST_SIZES:
        answer = await asyncio.to_thread(stalled_download, proxy.port, first)
        assert answer.endswith(b"a" * 1000 + b"z" * LAST_PART)
        assert len(answer.partition(b"\r\n\r\n")[2]) == first + LAST_PART
        status, _, body = await raw_exchange(proxy.port, b"GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (status, body) == (200, b"small"), f"after a response of {first + LAST_PART} bytes"
    assert release.connections == 1  # one release connection served all of it
