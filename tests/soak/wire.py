"""The soak clients' side of HTTP/1.1: connections that keep every byte, and one response read
strictly off one, with bounded waits.

``read_response`` accepts exactly one framing per response (Content-Length, chunked, or a body
ending with the connection) and raises ``Broken`` when the response does not complete: the
connection ended (``closed``), no byte came for ``idle`` seconds (``hang``), or the bytes are not
HTTP (``framing``). ``Broken`` says how many bytes of the response had arrived and keeps the head
when it was complete, so a cut answer can still be checked against its request.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

EXCERPT = 300  # bytes of a response kept for a failure report
LIMIT = 64 << 10  # the longest head or chunk-size line accepted
_STATUS = re.compile(rb"HTTP/1\.1 (\d{3}) [\x20-\x7e]*")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name]

    def first(self, name: str) -> str | None:
        found = self.values(name)
        return found[0] if found else None

    @property
    def closes(self) -> bool:
        return any("close" in v.lower() for v in self.values("connection"))


class Broken(Exception):
    def __init__(self, kind: str, got: int, excerpt: bytes, head: Response | None, why: str):
        super().__init__(f"{kind}: {why}")
        self.kind = kind  # closed | hang | framing
        self.got = got  # bytes of this response received
        self.excerpt = excerpt
        self.head = head
        self.why = why


class Inbox(asyncio.Protocol):
    """A client connection that keeps every byte it receives, also those that arrive just
    before a reset (``asyncio.StreamReader`` raises the reset before handing them out)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended: str | None = None  # "eof", or the error that ended the connection
        self._wake = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake.set()

    def eof_received(self) -> bool:
        self._end("eof")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(type(exc).__name__ if exc else "eof")
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _end(self, why: str) -> None:
        self.ended = self.ended or why
        self._wake.set()

    async def more(self, idle: float) -> None:
        """Wait for bytes or the end, at most ``idle`` seconds (else TimeoutError)."""
        self._wake.clear()
        async with asyncio.timeout(idle):
            await self._wake.wait()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        await self._writable.wait()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect(port: int) -> Inbox:
    loop = asyncio.get_running_loop()
    _, inbox = await loop.create_connection(Inbox, "127.0.0.1", port)
    return inbox


@dataclass
class _Progress:
    inbox: Inbox
    idle: float
    got: int = 0
    excerpt: bytearray = field(default_factory=bytearray)
    head: Response | None = None

    def take(self, n: int) -> bytes:
        data = bytes(self.inbox.buffer[:n])
        del self.inbox.buffer[:n]
        self.got += len(data)
        if len(self.excerpt) < EXCERPT:
            self.excerpt += data[: EXCERPT - len(self.excerpt)]
        return data

    def broken(self, kind: str, why: str) -> Broken:
        self.take(len(self.inbox.buffer))  # what arrived, if anything, is part of this response
        return Broken(kind, self.got, bytes(self.excerpt), self.head, why)

    async def _more(self, due: str) -> None:
        if self.inbox.ended is not None:
            raise self.broken("closed", f"connection ended ({self.inbox.ended}; {due} due)")
        try:
            await self.inbox.more(self.idle)
        except TimeoutError:
            raise self.broken("hang", f"nothing for {self.idle:g} s ({due} due)") from None

    async def until(self, sep: bytes) -> bytes:
        while True:
            at = self.inbox.buffer.find(sep)
            if at >= 0:
                return self.take(at + len(sep))
            if len(self.inbox.buffer) > LIMIT:
                raise self.broken("framing", f"no {sep!r} in {LIMIT} bytes")
            await self._more(repr(sep))

    async def exactly(self, n: int) -> bytes:
        while len(self.inbox.buffer) < n:
            await self._more(f"{n - len(self.inbox.buffer)} bytes")
        return self.take(n)

    async def to_eof(self) -> bytes:
        while self.inbox.ended is None:
            try:
                await self.inbox.more(self.idle)
            except TimeoutError:
                raise self.broken("hang", f"nothing for {self.idle:g} s") from None
        if self.inbox.ended != "eof":
            raise self.broken("closed", f"{self.inbox.ended} in a body ended by close")
        return self.take(len(self.inbox.buffer))


async def read_response(inbox: Inbox, idle: float) -> Response:
    p = _Progress(inbox, idle)
    head = await p.until(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = _STATUS.fullmatch(lines[0])
    if status is None:
        raise p.broken("framing", f"status line {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.fullmatch(name):
            raise p.broken("framing", f"header line {line[:80]!r}")
        headers.append((name.decode("ascii"), value.strip().decode("latin-1")))
    resp = Response(int(status[1]), headers)
    p.head = resp
    lengths = set(resp.values("content-length"))
    codings = resp.values("transfer-encoding")
    if lengths and codings:
        raise p.broken("framing", "both Content-Length and Transfer-Encoding")
    if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
        raise p.broken("framing", f"Content-Length {sorted(lengths)}")
    if codings and [c.lower() for c in codings] != ["chunked"]:
        raise p.broken("framing", f"Transfer-Encoding {codings}")
    if resp.status < 200 or resp.status in (204, 304):
        return resp
    if lengths:
        resp.body = await p.exactly(int(next(iter(lengths))))
    elif codings:
        resp.body = await _chunked(p)
    else:
        resp.body = await p.to_eof()
    return resp


async def _chunked(p: _Progress) -> bytes:
    parts = []
    while True:
        line = (await p.until(b"\r\n"))[:-2]
        size = line.split(b";")[0]
        if not size or not re.fullmatch(rb"[0-9a-fA-F]+", size):
            raise p.broken("framing", f"chunk size line {line[:40]!r}")
        n = int(size, 16)
        if n == 0:
            while await p.until(b"\r\n") != b"\r\n":  # trailer fields
                pass
            return b"".join(parts)
        parts.append(await p.exactly(n))
        if await p.exactly(2) != b"\r\n":
            raise p.broken("framing", "chunk data not followed by CRLF")
