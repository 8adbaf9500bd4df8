"""What the soak's faulty release does with one request, and the bytes of a good answer.

The choice is a pure function of (seed, release, request id), never of arrival order: a request
id named in a failure report meets the same behaviour when run again, and a request Switchback
sends twice (after a stale keep-alive connection) meets the same behaviour twice.

    kind               variants: what the release sends
    ok                 length | chunked | eof: a good answer (eof: the body ends with a FIN)
    slow               head: the head after 0.2-1.0 s;  body: the body in pieces over <= 1 s
    stall_head         silent: nothing;  partial: part of the head; then it waits for ever
    stall_body         length | chunked: the head and part of the body; then it waits for ever
    reset_before_head  silent: RST (SO_LINGER 0) right after reading the request
    reset_mid_head     partial: part of the head, then RST
    reset_mid_body     length | chunked | eof: the head and part of the body, then RST
    truncate           length: a Content-Length body cut short;  chunked: no last chunk; FIN
    garbage            binary | banner: not HTTP at all;  bad_chunk: a good head, a bad chunk
    trailing           duplicate: the whole response twice in one write;  junk: stray bytes,
                       later. (A whole second response sent later cannot be told from the
                       answer to the next request on that connection, by any HTTP/1.1 client:
                       it is not a fault a proxy can contain, so the soak does not send it.)

Every good body names the request it answers: text bodies open with a JSON line (``meta``)
followed by ``pad_len`` filler bytes made from the request id; JSON bodies carry the same keys
plus the filler as ``pad`` and a ``legacy`` field (a deprecated response field in the soak's
config, so the inspection path runs). The filler makes a body of another request, or a cut one,
tell itself apart from the right one byte for byte.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

VARIANTS: dict[str, tuple[str, ...]] = {
    "ok": ("length", "chunked", "eof"),
    "slow": ("head", "body"),
    "stall_head": ("silent", "partial"),
    "stall_body": ("length", "chunked"),
    "reset_before_head": ("silent",),
    "reset_mid_head": ("partial",),
    "reset_mid_body": ("length", "chunked", "eof"),
    "truncate": ("length", "chunked"),
    "garbage": ("binary", "banner", "bad_chunk"),
    "trailing": ("duplicate", "junk"),
}
FAULT_KINDS = tuple(kind for kind in VARIANTS if kind != "ok")
CUT_KINDS = frozenset({"stall_body", "reset_mid_body", "truncate"})  # a body cut part-way


@dataclass(frozen=True)
class Plan:
    kind: str
    variant: str
    framing: str  # length | chunked | eof: how the body (whole or cut) is framed
    json: bool
    pad: int  # filler bytes in the body
    delay: float  # slow: the head's delay or the body's whole time; trailing junk: before it
    cut: float  # where a cut head or body stops, as a fraction of it
    chunk: int  # chunk size under chunked framing

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.variant}"


def plan_for(seed: int, release: str, request_id: str, rates: Mapping[str, float]) -> Plan:
    """The behaviour for one request: a fault kind with probability ``rates[kind]``, else ok."""
    rng = random.Random(f"{seed}/{release}/{request_id}")
    kind = "ok"
    draw = rng.random()
    for name in FAULT_KINDS:
        draw -= rates.get(name, 0.0)
        if draw < 0:
            kind = name
            break
    variant = rng.choice(VARIANTS[kind])
    if variant in ("length", "chunked", "eof"):
        framing = variant
    elif variant == "bad_chunk":
        framing = "chunked"
    else:
        framing = rng.choice(("length", "chunked"))
    size = rng.random()
    if size < 0.90:
        pad = rng.randint(0, 2048)
    elif size < 0.98:
        pad = rng.randint(8 << 10, 64 << 10)
    else:
        pad = rng.randint(256 << 10, 1 << 20)
    if kind in CUT_KINDS or kind == "slow":
        pad = max(pad, 256)  # room to cut, or to send in pieces
    return Plan(
        kind=kind,
        variant=variant,
        framing=framing,
        json=rng.random() < 0.4,
        pad=pad,
        delay=rng.uniform(0.2, 1.0) if kind == "slow" else rng.uniform(0.0, 0.03),
        cut=rng.uniform(0.1, 0.9),
        chunk=rng.choice((512, 4096, 16384, 65536)),
    )


def filler(request_id: str, n: int) -> bytes:
    unit = request_id.encode("ascii") + b"|"
    return (unit * (n // len(unit) + 1))[:n]


def meta(
    release: str, request_id: str, method: str, body_len: int, body_sha256: str, pad_len: int
) -> dict[str, Any]:
    return {
        "id": request_id,
        "release": release,
        "method": method,
        "body_len": body_len,
        "body_sha256": body_sha256,
        "pad_len": pad_len,
    }


def response_body(as_json: bool, info: dict[str, Any]) -> tuple[bytes, bytes]:
    """(body, content type) of a good answer carrying ``info`` (from ``meta``)."""
    pad = filler(info["id"], info["pad_len"])
    if as_json:
        doc = {**info, "legacy": True, "pad": pad.decode("ascii")}
        return orjson.dumps(doc), b"application/json"
    return orjson.dumps(info) + b"\n" + pad, b"text/plain"


def response_head(
    request_id: str, release: str, content_type: bytes, framing: str, length: int
) -> bytes:
    lines = [
        b"HTTP/1.1 200 OK",
        b"X-Request-Id: " + request_id.encode("ascii"),
        b"X-Release: " + release.encode("ascii"),
        b"Content-Type: " + content_type,
    ]
    if framing == "length":
        lines.append(b"Content-Length: %d" % length)
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
    else:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def chunks(body: bytes, size: int) -> list[bytes]:
    """``body`` as chunked-encoded pieces, without the last (empty) chunk."""
    return [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]


def framed(body: bytes, framing: str, chunk: int) -> bytes:
    """The complete body on the wire under ``framing``."""
    if framing == "chunked":
        return b"".join(chunks(body, chunk)) + b"0\r\n\r\n"
    return body
