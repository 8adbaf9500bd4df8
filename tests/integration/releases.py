"""Real blue and green releases for the integration tests: aiohttp's low-level server, which
sees the request target exactly as sent (``raw_path``), with behaviours chosen by path.

    /users/{id}      JSON user; blue sends user.role, green sends user.role and user.roles
    /items           JSON list: {"items": [{"id", "role"}, ...]}
    /gzip            the /users/1 JSON, gzip-encoded (Content-Encoding: gzip), same bytes each time
    /status/{code}   an empty response with that status
    /slow/{seconds}  answers after a delay
    /stream/{bytes}  a chunked body of that many deterministic bytes
    /upload          reads the body as it streams; answers its length and SHA-256
    /ws              WebSocket echo, each text message prefixed with the release name;
                     the text "close:<code>" makes the release close with that code
    anything else    echo: method, raw target, headers and body digest as JSON
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httptools
import orjson
from aiohttp import WSMsgType, web
from aiohttp.web_request import BaseRequest

PATTERN = bytes(range(256)) * 256  # 64 KiB of deterministic bytes


def pattern_bytes(n: int) -> bytes:
    reps, rest = divmod(n, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


def user_body(release: str, user_id: str) -> dict[str, object]:
    user: dict[str, object] = {"id": user_id, "name": f"user {user_id}", "role": "admin"}
    if release == "green":
        user["roles"] = ["admin", "billing"]
    return {"user": user}


@dataclass
class Release:
    """One release's server state, for tests to look at what the app received."""

    name: str
    seen: list[dict[str, object]] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)
    server: web.Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add((peer[0], peer[1]))
        path = request.raw_path.partition("?")[0]
        if path == "/ws":
            return await self.websocket(request)
        if path == "/upload":
            return await self.upload(request)
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": list(request.raw_headers),
                "body": body,
            }
        )
        head = {"X-Release": self.name}
        if path.startswith("/users/"):
            payload = user_body(self.name, path.rsplit("/", 1)[1])
            return web.Response(
                body=orjson.dumps(payload), content_type="application/json", headers=head
            )
        if path == "/items":
            items = [{"id": i, "role": "viewer"} for i in range(3)]
            return web.Response(
                body=orjson.dumps({"items": items}), content_type="application/json", headers=head
            )
        if path == "/gzip":
            raw = gzip.compress(orjson.dumps(user_body(self.name, "1")), mtime=0)
            return web.Response(
                body=raw,
                headers={**head, "Content-Type": "application/json", "Content-Encoding": "gzip"},
            )
        if path.startswith("/status/"):
            return web.Response(status=int(path.rsplit("/", 1)[1]), headers=head)
        if path.startswith("/slow/"):
            await asyncio.sleep(float(path.rsplit("/", 1)[1]))
            return web.json_response({"release": self.name, "slow": True}, headers=head)
        if path.startswith("/stream/"):
            return await self.stream(request, int(path.rsplit("/", 1)[1]))
        echo = {
            "release": self.name,
            "method": request.method,
            "target": request.raw_path,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_len": len(body),
        }
        return web.Response(body=orjson.dumps(echo), content_type="application/json", headers=head)

    async def stream(self, request: BaseRequest, size: int) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"X-Release": self.name, "Content-Type": "application/octet-stream"}
        )
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        sent = 0
        while sent < size:
            piece = PATTERN[: min(len(PATTERN), size - sent)]
            await resp.write(piece)
            sent += len(piece)
        await resp.write_eof()
        return resp

    async def upload(self, request: BaseRequest) -> web.StreamResponse:
        digest = hashlib.sha256()
        total = 0
        async for chunk in request.content.iter_chunked(1 << 16):
            digest.update(chunk)
            total += len(chunk)
        return web.json_response({"release": self.name, "len": total, "sha256": digest.hexdigest()})

    async def websocket(self, request: BaseRequest) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data.startswith("close:"):
                await ws.close(code=int(msg.data[6:]), message=b"closed by " + self.name.encode())
            elif msg.type == WSMsgType.TEXT:
                await ws.send_str(f"{self.name}:{msg.data}")
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws


async def start_release(name: str, port: int = 0) -> tuple[Release, web.ServerRunner]:
    release = Release(name)
    server = web.Server(release.handle)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    release.server = server
    release.port = runner.addresses[0][1]
    return release, runner


Answer = bytes | list[bytes | float] | None
Script = Callable[[int, bytes], Awaitable[Answer]]


class ScriptedRelease:
    """A release speaking raw HTTP/1.1 from a script, for what aiohttp would never send:
    hop-by-hop response headers, a body that ends when the connection closes, a head followed
    by silence, a keep-alive connection closed under a request.

    ``script(n, head)`` gets the request's number on its connection (1, 2, ...) and its head,
    and returns the bytes to answer, or a list of byte strings to send with pauses (floats,
    in seconds) between them, or None to close the connection without answering. The
    connection closes after an answer containing ``Connection: close`` or no framing at all,
    and also when ``close_after`` is set. ``Expect: 100-continue`` is answered before the body
    is read, as a server should.
    """

    def __init__(self, script: Script, close_after: bool = False) -> None:
        self.script = script
        self.close_after = close_after
        self.heads: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                n += 1
                self.heads.append(head)
                length = _content_length(head)
                if b"\r\nexpect: 100-continue\r\n" in head.lower():
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                if length:
                    await reader.readexactly(length)
                answer = await self.script(n, head)
                if answer is None:
                    return
                parts = [answer] if isinstance(answer, bytes) else answer
                for part in parts:
                    if isinstance(part, float):
                        await asyncio.sleep(part)
                    else:
                        writer.write(part)
                        await writer.drain()
                sent = b"".join(p for p in parts if isinstance(p, bytes))
                lower = sent.partition(b"\r\n\r\n")[0].lower()
                framed = b"content-length:" in lower or b"transfer-encoding:" in lower
                if self.close_after or b"connection: close" in lower or not framed:
                    return
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


@dataclass
class Received:
    """One request exactly as a release received it: head fields and trailer fields apart."""

    method: str
    target: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    trailers: list[tuple[bytes, bytes]]


class _RecordingProtocol(asyncio.Protocol):
    def __init__(self, release: RecordingRelease) -> None:
        self.release = release
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.in_head = True
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.in_head, self.target, self.headers, self.trailers, self.body = True, b"", [], [], []

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        (self.headers if self.in_head else self.trailers).append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        received = Received(method, self.target, self.headers, b"".join(self.body), self.trailers)
        self.release.received.append(received)
        if self.transport is not None:
            self.transport.write(self.release.answer(received))


class RecordingRelease:
    """A release that parses requests with llhttp and keeps each one whole (head fields and
    trailer fields apart, the body decoded from its framing), answering ``answer(request)``
    (default: 200 with the request's target as the body)."""

    def __init__(self, answer: Callable[[Received], bytes] | None = None) -> None:
        self.answer = answer or _echo_target
        self.received: list[Received] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _RecordingProtocol(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def _echo_target(received: Received) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
        len(received.target),
        received.target,
    )


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawRelease:
    """A release on raw asyncio streams, each connection served by ``handler`` (for what a
    real server would never send: resets, silences, endless heads); it records how each
    connection ended: "served" (the handler returned) or "eof" (the proxy hung up first)."""

    def __init__(self, handler: RawHandler) -> None:
        self.handler = handler
        self.server: asyncio.Server | None = None
        self.ended: list[str] = []

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self.handler(reader, writer)
            self.ended.append("served")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.ended.append("eof")
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
