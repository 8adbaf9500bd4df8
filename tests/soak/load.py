"""The soak's clients: keep-alive connections to Switchback, each request with its own id,
every answer judged (``verdict``) and recorded in a ``Tally``.

Each client has its own seeded RNG. It opens a connection, sends 5-60 requests on it (one at a
time, or in batches of three on pipelining clients: every fourth one), then opens another.
Requests are GET (70%), POST with a Content-Length body (20%, up to 256 KiB) or POST with a
chunked body sent in pieces (10%); pipelined batches carry only GETs and small POSTs, so a
client never blocks writing while answers wait to be read. Client ids (``X-Client-Id``) are
drawn from 200, so the sticky split spreads them over both releases.

Clients may also misbehave on the request side (``RUDE_KINDS``), one connection at a time:
``stalled_upload`` stops sending a POST body part-way, ``trickled_head`` trickles a head that
never ends. Switchback must end each of those connections (closing it, perhaps after an error
status) within ``rude_bound`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from tests.soak.verdict import Sent, Verdict, fail, judge, judge_broken, ok
from tests.soak.wire import Broken, Inbox, connect, read_response

RUDE_KINDS = ("stalled_upload", "trickled_head")


@dataclass(frozen=True)
class Record:
    sent: Sent
    verdict: Verdict
    ended: float  # the event loop's clock when the verdict was reached
    excerpt: bytes = b""


@dataclass
class Tally:
    records: list[Record] = field(default_factory=list)
    rude: Counter[str] = field(default_factory=Counter)
    rude_failures: list[str] = field(default_factory=list)

    def add(self, sent: Sent, verdict: Verdict, excerpt: bytes = b"") -> None:
        ended = asyncio.get_running_loop().time()
        self.records.append(Record(sent, verdict, ended, excerpt if verdict.failure else b""))

    def outcomes(self) -> Counter[str]:
        return Counter(r.verdict.kind for r in self.records)

    def failures(self) -> list[Record]:
        return [r for r in self.records if r.verdict.failure]

    def shapes(self) -> Counter[str]:
        return Counter(r.sent.shape for r in self.records)


@dataclass
class Clients:
    port: int
    seed: int
    idle: float  # the longest a client waits for a byte of an answer
    rude_bound: float
    tally: Tally
    phase: str = "w"

    async def run(self, clients: int, seconds: float, rude: Iterable[str] = ()) -> None:
        """``clients`` well-behaved clients, and one client for each kind in ``rude``
        (``RUDE_KINDS``), for ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        tasks = [self._client(i, deadline) for i in range(clients)]
        tasks += [self._rude(kind, deadline) for kind in rude]
        await asyncio.gather(*tasks)

    # -- well-behaved clients --
    async def _client(self, index: int, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(f"{self.seed}/{self.phase}/client/{index}")
        pipelining = index % 4 == 3
        serial = 0
        while loop.time() < deadline:
            inbox = await connect(self.port)
            try:
                for _ in range(rng.randint(5, 60)):
                    if loop.time() >= deadline:
                        break
                    batch = []
                    for _ in range(3 if pipelining else 1):
                        serial += 1
                        request_id = f"{self.phase}{index:02d}-{serial:06d}"  # REQUEST_ID
                        batch.append(_request(rng, request_id, pipelining))
                    if not await self._exchange(rng, batch, inbox):
                        break
            finally:
                inbox.abort()

    async def _exchange(
        self,
        rng: random.Random,
        batch: list[tuple[Sent, bytes]],
        inbox: Inbox,
    ) -> bool:
        """Send ``batch`` (requests and their heads), read and judge the answers in order;
        False when the connection cannot go on."""
        loop = asyncio.get_running_loop()
        sent: list[Sent] = []
        for request, head in batch:
            sent.append(dataclasses.replace(request, sent_at=loop.time()))
            if request.shape.startswith("chunked"):
                await _send_chunked(rng, inbox, head, request.body)
            else:
                inbox.write(head + request.body)
        await inbox.drain()
        for i, one in enumerate(sent):
            try:
                resp = await read_response(inbox, self.idle)
            except Broken as exc:
                self.tally.add(one, judge_broken(one, exc), exc.excerpt)
                self._drop(sent[i + 1 :], exc.kind == "closed")
                return False
            verdict = judge(one, resp)
            self.tally.add(one, verdict, resp.body[:300])
            if verdict.failure or resp.closes:
                self._drop(sent[i + 1 :], not verdict.failure)
                return False
        return True

    def _drop(self, rest: list[Sent], after_close: bool) -> None:
        """Pipelined requests behind an answer that ended the connection are never answered
        (clean); behind a failure they are abandoned (the failure is counted once)."""
        for one in rest:
            self.tally.add(one, ok("dropped_after_close") if after_close else ok("abandoned"))

    # -- misbehaving clients --
    async def _rude(self, kind: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while deadline - loop.time() > self.rude_bound:
            attempt += 1
            request_id = f"{self.phase}-{kind}-{attempt:04d}"
            self.tally.rude[kind] += 1
            verdict = await self._rude_once(kind, request_id)
            self.tally.rude[f"{kind}: {verdict.kind}"] += 1
            if verdict.failure:
                self.tally.rude_failures.append(f"{request_id} {kind}: {verdict.detail}")

    async def _rude_once(self, kind: str, request_id: str) -> Verdict:
        inbox = await connect(self.port)
        head = f"POST /soak/{request_id} HTTP/1.1\r\nHost: soak\r\nX-Request-Id: {request_id}\r\n"
        try:
            async with asyncio.timeout(self.rude_bound):
                if kind == "stalled_upload":
                    inbox.write(head.encode() + b"Content-Length: 4096\r\n\r\n" + b"x" * 100)
                else:
                    inbox.write(head.encode())
                line = 0
                while inbox.ended is None:
                    if kind == "trickled_head":  # a header line every 0.25 s, never the end
                        line += 1
                        inbox.write(b"X-Trickle-%d: %s\r\n" % (line, b"t" * 20))
                    with contextlib.suppress(TimeoutError):
                        await inbox.more(0.25)
        except TimeoutError:
            return fail("hang", f"still open after {self.rude_bound:g} s")
        finally:
            inbox.abort()
        answer = bytes(inbox.buffer)
        status = answer[9:12]
        if answer and not (answer.startswith(b"HTTP/1.1 ") and status[:1] in (b"4", b"5")):
            return fail("unexpected_answer", repr(answer[:100]))
        return ok(f"ended {status.decode()}" if answer else "ended")


def _request(rng: random.Random, request_id: str, pipelining: bool) -> tuple[Sent, bytes]:
    """One request (its ``sent_at`` is set when it is written) and its head."""
    draw = rng.random()
    client = f"user-{rng.randrange(200)}"
    body = b""
    if draw < 0.7:
        method, shape = "GET", "get"
    else:
        big = rng.random() < 0.1 and not pipelining
        body = rng.randbytes(rng.randint(16 << 10, 256 << 10) if big else rng.randint(0, 4096))
        method, shape = "POST", "post" if draw < 0.9 else "chunked"
    head = _head(method, request_id, client)
    if shape == "post":
        head += b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(body)
    elif shape == "chunked":
        head += b"Transfer-Encoding: chunked\r\n"
    shape += "+pipelined" if pipelining else ""
    return Sent(request_id, method, body, shape, 0.0), head + b"\r\n"


async def _send_chunked(rng: random.Random, inbox: Inbox, head: bytes, body: bytes) -> None:
    inbox.write(head)
    pos = 0
    while pos < len(body):
        piece = body[pos : pos + rng.randint(1, 32 << 10)]
        pos += len(piece)
        inbox.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        await inbox.drain()
        await asyncio.sleep(rng.uniform(0, 0.005))
    inbox.write(b"0\r\n\r\n")


def _head(method: str, request_id: str, client: str) -> bytes:
    """A request head without its framing headers and without the blank line."""
    return (
        f"{method} /soak/{request_id}?c={client} HTTP/1.1\r\nHost: soak\r\n"
        f"X-Request-Id: {request_id}\r\nX-Client-Id: {client}\r\n"
    ).encode()


async def one_get(port: int, request_id: str, idle: float) -> Verdict:
    """One GET on a new connection, judged."""
    sent = Sent(request_id, "GET", b"", "get", 0.0)
    inbox = await connect(port)
    try:
        inbox.write(_head("GET", request_id, "user-0") + b"\r\n")
        return judge(sent, await read_response(inbox, idle))
    except Broken as exc:
        return judge_broken(sent, exc)
    finally:
        inbox.abort()
