"""WebSocket through Switchback: the upgrade reaches the client's release, messages flow both
ways untouched, either side can close, and a refused upgrade leaves plain HTTP working."""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import (
    Proxy,
    Releases,
    StartProxy,
    header_values,
    raw_exchange,
    read_response,
    sample,
)
from tests.integration.helpers_rollout import poll

HALF = {"traffic": {"weights": {"blue": 50, "green": 50}}}


async def served_by(proxy: Proxy, client: str) -> str:
    _, headers, _ = await raw_exchange(
        proxy.port, f"GET /who HTTP/1.1\r\nHost: h\r\nX-Client-Id: {client}\r\n\r\n".encode()
    )
    return header_values(headers, "X-Served-By")[0]


async def open_tunnels(proxy: Proxy) -> dict[str, float]:
    samples = await proxy.metrics()
    return {
        dict(labels)["release"]: value
        for (name, labels), value in samples.items()
        if name == "switchback_websocket_tunnels"
    }


async def wait_for_tunnels(proxy: Proxy, expected: dict[str, float]) -> None:
    for _ in range(50):
        if await open_tunnels(proxy) == expected:
            return
        await asyncio.sleep(0.05)
    assert await open_tunnels(proxy) == expected


async def test_websocket_reaches_the_clients_release(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(HALF)
    seen = set()
    async with aiohttp.ClientSession() as session:
        for i in range(12):
            client = f"ws-client-{i}"
            release = await served_by(proxy, client)
            seen.add(release)
            async with session.ws_connect(proxy.url + "/ws", headers={"X-Client-Id": client}) as ws:
                await ws.send_str(f"hello {i}")
                assert await ws.receive_str(timeout=5) == f"{release}:hello {i}"
    assert seen == {"blue", "green"}  # both releases were exercised


async def test_text_and_binary_messages_cross_untouched(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    big = os.urandom(3 * 1024 * 1024 + 5)
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url + "/ws", max_msg_size=0) as ws:
            assert ws._response.headers.get("X-Served-By") == "blue"  # noqa: SLF001
            await ws.send_str("héllo ☃")
            assert await ws.receive_str(timeout=5) == "blue:héllo ☃"
            for payload in (b"", b"\x00\xff" * 60, os.urandom(70_000), big):
                await ws.send_bytes(payload)
                assert await ws.receive_bytes(timeout=10) == payload
            # Several messages in flight at once come back in order.
            for i in range(50):
                await ws.send_str(str(i))
            assert [await ws.receive_str(timeout=5) for _ in range(50)] == [
                f"blue:{i}" for i in range(50)
            ]


async def test_client_closes(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback()
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(proxy.url + "/ws")
        await ws.send_str("ping")
        assert await ws.receive_str(timeout=5) == "blue:ping"
        await wait_for_tunnels(proxy, {"blue": 1, "green": 0})
        assert await asyncio.wait_for(ws.close(code=1000), 5)
        assert ws.close_code == 1000  # the release's answer to our Close frame came back
    await wait_for_tunnels(proxy, {"blue": 0, "green": 0})
    # The proxy serves on.
    status, _, _ = await raw_exchange(proxy.port, b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200


async def test_release_closes(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback()
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_str("close:4001")
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert (msg.data, msg.extra) == (4001, "closed by blue")
    await wait_for_tunnels(proxy, {"blue": 0, "green": 0})


async def test_client_vanishing_closes_the_release_side(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
    await wait_for_tunnels(proxy, {"blue": 1, "green": 0})
    writer.transport.abort()
    await wait_for_tunnels(proxy, {"blue": 0, "green": 0})


async def test_rollback_tells_candidate_websockets_to_reconnect(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {"traffic": {"weights": {"blue": 0, "green": 100}}, "rollout": {"websocket_grace": 0.1}}
    )
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_str("before")
            assert await ws.receive_str(timeout=5) == "green:before"
            status, _ = await proxy.admin_call("POST", "/rollback", {"reason": "test"})
            assert status == 200
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == 1012
        async with session.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_str("after")
            assert await ws.receive_str(timeout=5) == "blue:after"


UPGRADE_HEADERS = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


@pytest.mark.parametrize("warm", [False, True], ids=["cold-pool", "warm-pool"])
async def test_refused_upgrade_leaves_the_connection_serving_http(
    switchback: StartProxy, releases: Releases, warm: bool
) -> None:
    """The release answers an upgrade request with a plain response (this path is not a
    WebSocket): the client's next request on the same connection must be answered."""
    proxy = await switchback()
    if warm:  # an idle upstream connection is waiting in the pool
        await raw_exchange(proxy.port, b"GET /warm HTTP/1.1\r\nHost: h\r\n\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /not-a-socket HTTP/1.1\r\nHost: h\r\n" + UPGRADE_HEADERS + b"\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
        assert orjson.loads(body)["target"] == "/not-a-socket"
        writer.write(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
        assert orjson.loads(body)["target"] == "/next"
    finally:
        writer.close()


async def test_request_pipelined_behind_a_refused_upgrade_is_answered_as_http(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"GET /not-a-socket HTTP/1.1\r\nHost: h\r\n"
            + UPGRADE_HEADERS
            + b"\r\nGET /behind HTTP/1.1\r\nHost: h\r\n\r\n"
        )
        first = await asyncio.wait_for(read_response(reader), 5)
        second = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert orjson.loads(first[2])["target"] == "/not-a-socket"
    assert orjson.loads(second[2])["target"] == "/behind"
    # The pipelined request went through the proxy like any other (forwarding headers added).
    assert header_values(orjson.loads(second[2])["headers"], "X-Forwarded-For") == ["127.0.0.1"]
    assert header_values(second[1], "X-Served-By") == ["blue"]


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)
SWITCHED = (
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
)


async def test_a_tunnel_whose_client_stops_reading_is_closed_after_send_timeout(
    switchback: StartProxy, raw_release: Any
) -> None:
    """A release floods a tunnel with binary frames while its client reads nothing: the
    release is paused (the proxy's buffer stays small), and once the client has taken no
    bytes for ``server.send_timeout`` the tunnel is closed and counted, as for HTTP."""
    frame = bytes([0x82, 126]) + (60000).to_bytes(2, "big") + b"x" * 60000
    written = 0

    async def flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal written
        await reader.readuntil(b"\r\n\r\n")
        writer.write(SWITCHED)
        try:
            while True:
                writer.write(frame)
                await writer.drain()
                written += len(frame)
        except ConnectionError:
            return

    release = await raw_release(flood)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "server": {"send_timeout": 1.0}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, limit=1024)
    try:
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer.write(UPGRADE)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.transport.pause_reading()
        samples = await poll(
            proxy.metrics,
            lambda s: sample(s, "switchback_rejected_total", reason="send_timeout") == 1,
            10,
            "the send timeout to close the tunnel",
        )
    finally:
        writer.close()
    assert sample(samples, "switchback_websocket_tunnels", release="blue") == 0
    assert written < 16 * 1024 * 1024  # the release was paused meanwhile
