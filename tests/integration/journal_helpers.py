"""For the journal's tests: a release that keeps every request's bytes exactly as they came
off its socket, and the requests a client sends over a raw socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httptools
import pytest

from tests.integration.conftest import Proxy, raw_exchange
from tests.integration.releases import RecordingRelease


class _Recording(asyncio.Protocol):
    def __init__(self, owner: SocketRecorder) -> None:
        self.owner = owner
        self.parser = httptools.HttpRequestParser(self)
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_complete(self) -> None:
        # The sender waits for each answer before the next request on a connection, so a
        # request's last byte is the last byte read so far.
        self.owner.received.append(bytes(self.buffer))
        self.buffer.clear()
        if self.transport is not None:
            status = self.owner.status
            self.transport.write(b"HTTP/1.1 %d Created\r\nContent-Length: 0\r\n\r\n" % status)


class SocketRecorder(RecordingRelease):
    """Answers every request ``status`` and keeps its raw bytes (head and body) in order
    (``RecordingRelease`` keeps them parsed)."""

    def __init__(self, status: int = 201) -> None:
        super().__init__()
        self.status = status
        self.received: list[bytes] = []  # type: ignore[assignment]

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Recording(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]


@pytest.fixture(name="recorders")
async def recorders_fixture() -> AsyncIterator[tuple[SocketRecorder, SocketRecorder]]:
    """(blue, green): two recording releases."""
    blue, green = SocketRecorder(), SocketRecorder()
    await blue.start()
    await green.start()
    yield blue, green
    await blue.close()
    await green.close()


def on(blue: SocketRecorder, green: SocketRecorder, **extra: Any) -> dict[str, Any]:
    """Config pointing the releases at the recorders, green carrying all traffic."""
    config: dict[str, Any] = {
        "releases": {"blue": {"url": blue.url}, "green": {"url": green.url}},
        "traffic": {
            "stable": "blue",
            "weights": {"blue": 0, "green": 100},
            "override_header": "X-Release",
        },
    }
    config.update(extra)
    return config


def request(method: str, target: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    """A request as a client writes it: the headers given, then Content-Length if a body."""
    head = b"%s %s HTTP/1.1\r\nHost: shop.example\r\n" % (method.encode(), target)
    for line in headers:
        head += line + b"\r\n"
    if body or method in ("POST", "PUT", "PATCH"):
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


async def send(port: int, data: bytes) -> int:
    status, _, _ = await raw_exchange(port, data)
    return status


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds (the event the test needs), or fail after ``timeout``."""
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


async def journal(proxy: Proxy, query: str = "") -> dict[str, Any]:
    code, body = await proxy.admin_call("GET", "/journal" + query)
    assert code == 200, body
    return body  # type: ignore[no-any-return]


async def replay(proxy: Proxy, **body: Any) -> dict[str, Any]:
    code, answer = await proxy.admin_call("POST", "/journal/replay", body)
    assert code == 200, answer
    return answer  # type: ignore[no-any-return]
