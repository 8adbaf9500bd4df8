"""Timeouts on every wait: a request body that stalls, a release that stops sending (or
reading) mid-exchange, a client that stops reading, an idle keep-alive connection. Each ends
cleanly, frees both connections and is counted; the proxy goes on serving."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from tests.integration.conftest import (
    Proxy,
    StartProxy,
    header_values,
    raw_exchange,
    read_response,
    sample,
)
from tests.integration.helpers_rollout import wait_until

REJECTED = "switchback_rejected_total"
ERRORS = "switchback_upstream_errors_total"


async def idle(proxy: Proxy) -> None:
    """Until nothing is in flight and no client connection is open."""
    runtime = proxy.runtime
    await wait_until(
        lambda: (
            all(p.in_flight == 0 for p in runtime.pools.values())
            and not runtime.listener.connections
        ),
        10,
        "no request in flight and no client connection",
    )


async def test_a_request_body_that_stalls_is_answered_408(
    switchback: StartProxy, raw_release: Any
) -> None:
    """The client announces 100 bytes, sends 10 and goes silent: after ``body_timeout`` it
    gets a 408, the release's connection (which had the head and the 10 bytes) is cut so it
    never takes a truncated body for a whole one, and both connections are freed."""
    got_part = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(10)
        got_part.set()
        await reader.readexactly(90)  # never comes: the proxy cuts the connection
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")

    release = await raw_release(handler)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "server": {"body_timeout": 0.3}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
        await asyncio.wait_for(got_part.wait(), 5)
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    assert (status, orjson.loads(body)["error"]) == (408, "request_timeout")
    assert header_values(headers, "Connection") == ["close"]
    await idle(proxy)
    assert release.ended == ["eof"]
    assert sample(await proxy.metrics(), REJECTED, reason="body_timeout") == 1


async def test_a_release_that_stops_sending_mid_body_is_cut_off(
    switchback: StartProxy, raw_release: Any
) -> None:
    """Head and half the body, then silence: after ``upstream.read_timeout`` the client's
    connection is closed without the rest (never a complete-looking body), both sides are
    freed, and the release's timeout is counted."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 50)
        await writer.drain()
        await reader.read()  # until the proxy hangs up

    release = await raw_release(handler)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "upstream": {"read_timeout": 0.3}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        rest = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ") and rest == b"x" * 50
    await idle(proxy)
    assert release.ended == ["served"]
    assert sample(await proxy.metrics(), ERRORS, release="blue", kind="timeout") == 1


async def test_a_release_silent_while_its_response_is_held_is_a_504(
    switchback: StartProxy, raw_release: Any
) -> None:
    """A JSON response held for deprecation inspection whose body stops coming: the client
    has seen nothing yet, so it gets a JSON 504 naming the release."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"user": {'
        )
        await writer.drain()
        await reader.read()

    release = await raw_release(handler)
    proxy = await switchback(
        {
            "releases": {"blue": {"url": release.url}},
            "upstream": {"read_timeout": 0.3},
            "deprecations": [{"id": "r", "field": "user.role", "deprecated": "2026-06-01"}],
        }
    )
    status, _, body = await raw_exchange(proxy.port, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    payload = orjson.loads(body)
    assert (status, payload["error"], payload["release"]) == (504, "upstream_timeout", "blue")


async def test_a_release_that_stops_reading_the_request_body_is_a_504(
    switchback: StartProxy, raw_release: Any
) -> None:
    """The release reads the head, then neither reads the body nor answers: once the
    sockets are full the proxy stops reading from the client; after ``read_timeout`` the
    client gets a 504 naming the release."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(30)  # neither reads nor answers; cancelled when the test ends

    release = await raw_release(handler)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "upstream": {"read_timeout": 0.5}}
    )
    size = 64 * 1024 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    sender: asyncio.Task[None] | None = None
    try:
        writer.write(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size)

        async def send() -> None:
            chunk = b"u" * 65536
            try:
                for _ in range(size // len(chunk)):
                    writer.write(chunk)
                    await writer.drain()
            except ConnectionError:
                pass

        sender = asyncio.create_task(send())
        status, _, body = await asyncio.wait_for(read_response(reader), 10)
    finally:
        if sender is not None:
            sender.cancel()
        writer.close()
    payload = orjson.loads(body)
    assert (status, payload["error"], payload["release"]) == (504, "upstream_timeout", "blue")
    assert "took no request bytes" in payload["detail"]


async def test_a_client_that_stops_reading_is_cut_off(
    switchback: StartProxy, raw_release: Any
) -> None:
    """A large response to a client that never reads it: once the sockets are full, after
    ``send_timeout`` the client's connection is closed and the release's too."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        size = 256 * 1024 * 1024
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        chunk = b"d" * 65536
        for _ in range(size // len(chunk)):
            writer.write(chunk)
            await writer.drain()

    release = await raw_release(handler)
    proxy = await switchback(
        {"releases": {"blue": {"url": release.url}}, "server": {"send_timeout": 0.3}}
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port, limit=1024)
    try:
        writer.write(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        await idle(proxy)  # without reading a byte
    finally:
        writer.close()
    assert release.ended == ["eof"]
    assert sample(await proxy.metrics(), REJECTED, reason="send_timeout") == 1


async def test_an_idle_keep_alive_connection_is_closed(switchback: StartProxy) -> None:
    proxy = await switchback({"server": {"keepalive_timeout": 0.3, "head_timeout": 5}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /users/1 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, without an answer
    finally:
        writer.close()
    assert sample(await proxy.metrics(), REJECTED, reason="head_timeout") == 0
