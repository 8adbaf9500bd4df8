"""A release that misbehaves at the byte level: HTTP/1.1 on raw asyncio streams, keep-alive,
and for each request the behaviour ``plans.plan_for`` draws (a good answer or a fault).

It reads each request whole (Content-Length or chunked) before it answers, echoes the request id
(``X-Request-Id``) in the head and the body, and reports the SHA-256 of the body it received.
Every fault it injects is counted by kind and by variant, and remembered by request id, so a
failure seen by a client can be matched with what the release sent. A keep-alive connection
idle for ``idle_close`` seconds is closed (FIN), as servers do; a stalled answer waits until
Switchback closes the connection. Write buffers are flushed to the kernel before every reset, so
a reset mid-body follows the bytes it cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from tests.soak.plans import Plan, chunks, framed, meta, plan_for, response_body, response_head

HOLD_LIMIT = 120.0  # a stalled answer gives up after this even if nobody closes the connection


class Malformed(Exception):
    """What Switchback sent is not a request this release can read."""


@dataclass(frozen=True)
class Request:
    method: str
    request_id: str
    body: bytes


class FaultyRelease:
    def __init__(
        self, name: str, seed: int, rates: Mapping[str, float], idle_close: float = 2.0
    ) -> None:
        self.name = name
        self.seed = seed
        self.rates = dict(rates)
        self.idle_close = idle_close
        self.injecting = True  # False: every request is answered well
        self.requests = 0
        self.faults: Counter[str] = Counter()  # by kind
        self.variants: Counter[str] = Counter()  # by kind/variant, good answers included
        self.by_id: dict[str, list[str]] = {}  # request id -> what it met, each time it came
        self.incomplete = 0  # requests cut off before their end (the sender went away)
        self.malformed: list[str] = []
        self.open = 0  # connections now
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=1024)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    # -- one connection --
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.open += 1
        writer.transport.set_write_buffer_limits(0)  # drain() waits until the kernel has it all
        try:
            await self._requests(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.transport.abort()
            self._tasks.discard(task)

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                async with asyncio.timeout(self.idle_close):
                    head = await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                writer.close()  # an idle keep-alive connection: a FIN, as servers do
                return
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    self.incomplete += 1
                return
            try:
                request = await read_request(head, reader)
            except asyncio.IncompleteReadError:
                self.incomplete += 1
                return
            except (Malformed, ValueError) as exc:
                self.malformed.append(f"{exc}: {head[:200]!r}")
                return
            self.requests += 1
            rates = self.rates if self.injecting else {}
            plan = plan_for(self.seed, self.name, request.request_id, rates)
            self.variants[plan.name] += 1
            if plan.kind != "ok":
                self.faults[plan.kind] += 1
            self.by_id.setdefault(request.request_id, []).append(plan.name)
            if not await self._answer(request, plan, reader, writer):
                return

    async def _answer(
        self,
        request: Request,
        plan: Plan,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Carry out ``plan``; True when the connection may serve the next request."""
        info = meta(
            self.name,
            request.request_id,
            request.method,
            len(request.body),
            hashlib.sha256(request.body).hexdigest(),
            plan.pad,
        )
        body, ctype = response_body(plan.json, info)
        head = response_head(request.request_id, self.name, ctype, plan.framing, len(body))
        wire = framed(body, plan.framing, plan.chunk)
        kind, variant = plan.kind, plan.variant
        if kind in ("ok", "slow"):
            if variant == "head":
                await asyncio.sleep(plan.delay)
            if variant == "body":
                pieces = [head, *_split(wire, 4)]
                for piece in pieces:
                    await send(writer, piece)
                    await asyncio.sleep(plan.delay / len(pieces))
            else:
                await send(writer, head + wire)
            if plan.framing == "eof":
                writer.close()
                return False
            return True
        if kind == "trailing":
            if variant == "duplicate":  # the whole response twice, in one write
                await send(writer, head + wire + head + wire)
            else:  # stray bytes a while later
                await send(writer, head + wire)
                await asyncio.sleep(plan.delay)
                await send(writer, b"\x00\x01junk\r\n\r\n")
            return True
        if kind in ("stall_head", "reset_before_head", "reset_mid_head"):
            if variant == "partial":
                await send(writer, head[: max(1, int(len(head) * plan.cut))])
        elif kind == "truncate" and variant == "chunked":
            await send(writer, head + b"".join(chunks(body, plan.chunk)))  # no last chunk
        elif kind in ("stall_body", "reset_mid_body", "truncate"):
            await send(writer, head + wire[: max(1, int(len(wire) * plan.cut))])
        elif kind == "garbage":
            await send(writer, _garbage(variant, head))
        if kind.startswith("reset"):
            await asyncio.sleep(0.01)  # let Switchback read what came before the reset
            reset(writer)
        elif kind == "truncate":
            writer.close()
        else:  # stall_*, garbage: wait for Switchback to give up on this connection
            await hold(reader)
        return False


async def read_request(head: bytes, reader: asyncio.StreamReader) -> Request:
    lines = head[:-4].split(b"\r\n")
    method, _target, version = lines[0].split(b" ")
    if version != b"HTTP/1.1":
        raise Malformed(f"version {version!r}")
    fields: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise Malformed(f"header line {line!r}")
        fields.setdefault(name.lower(), []).append(value.strip())
    ids = fields.get(b"x-request-id", [])
    if len(ids) != 1:
        raise Malformed(f"{len(ids)} X-Request-Id headers")
    lengths = fields.get(b"content-length", [])
    chunked = any(b"chunked" in v.lower() for v in fields.get(b"transfer-encoding", []))
    if chunked and lengths:
        raise Malformed("both Content-Length and chunked")
    if chunked:
        body = await read_chunked(reader)
    elif lengths:
        if len(lengths) != 1 or not lengths[0].isdigit():
            raise Malformed(f"Content-Length {lengths!r}")
        body = await reader.readexactly(int(lengths[0]))
    else:
        body = b""
    return Request(method.decode("ascii"), ids[0].decode("ascii"), body)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise Malformed("chunk not followed by CRLF")


async def send(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST: SO_LINGER on with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def hold(reader: asyncio.StreamReader) -> None:
    """Say nothing until the other side closes (or ``HOLD_LIMIT`` passes)."""
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(HOLD_LIMIT):
            while await reader.read(65536):
                pass


def _garbage(variant: str, head: bytes) -> bytes:
    if variant == "binary":
        return bytes(range(256)) * 4
    if variant == "banner":
        return b"SSH-2.0-OpenSSH_9.6\r\n"
    return head + b"zz-not-a-chunk-size\r\n\r\n"  # bad_chunk: a chunked head, then no chunk


def _split(data: bytes, n: int) -> list[bytes]:
    step = max(1, len(data) // n)
    return [data[i : i + step] for i in range(0, len(data), step)]
