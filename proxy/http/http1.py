"""HTTP/1.1 wire helpers for the listener and the upstream client: pure functions over bytes.

Header lists are ``[(name, value), ...]`` exactly as parsed (original case, original order).
Hop-by-hop headers (RFC 9110 section 7.6.1: Connection and every header it names,
Proxy-Connection, Keep-Alive, TE, Transfer-Encoding, Upgrade, plus Trailer and the
Proxy-Authenticate/Proxy-Authorization pair that belong to a single hop) never cross the proxy;
the framing of each side is the proxy's own business.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

import orjson

from proxy.errors import Refused
from proxy.pipeline import Exchange

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
        b"proxy-authenticate",
        b"proxy-authentication-info",  # like Proxy-Authenticate, for the next client only
        b"proxy-authorization",
    }
)

_REASONS = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
NO_BODY_STATUS = frozenset({204, 304})


_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close", b"upgrade"})


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Lower-case tokens of every Connection header (the headers it names are hop-by-hop)."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def hop_by_hop(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The lower-case names that must not cross the proxy: the fixed set, plus any header named
    by any Connection header (``Connection: keep-alive`` and the like cost nothing more)."""
    for name, value in headers:
        if len(name) == 10 and name.lower() == b"connection":
            if value.lower() not in _PLAIN_CONNECTION:
                return HOP_BY_HOP | connection_tokens(headers)
    return HOP_BY_HOP


def body_announced(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request head announces a body: a Content-Length other than 0, or a
    Transfer-Encoding."""
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            return True
        if lower == b"content-length" and value.strip(b" \t").lstrip(b"0") != b"":
            return True
    return False


def end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers minus hop-by-hop ones."""
    drop = hop_by_hop(headers)
    return [(n, v) for n, v in headers if n.lower() not in drop]


def status_line(status: int, reason: bytes | None = None) -> bytes:
    key = (status, reason)
    line = _STATUS_LINES.get(key)
    if line is None:
        phrase = reason if reason else _REASONS.get(status, b"Unknown")
        line = b"HTTP/1.1 %d %s\r\n" % (status, phrase)
        if len(_STATUS_LINES) < 256:  # the usual few; a release's odd phrases are not kept
            _STATUS_LINES[key] = line
    return line


_STATUS_LINES: dict[tuple[int, bytes | None], bytes] = {}


def serialize_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % (n, v) for n, v in headers)


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (never the empty last chunk: callers send LAST_CHUNK)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"

# Fields that must never travel in a trailer section (RFC 9110 section 6.5.1: framing and
# routing are decided before the content); hop-by-hop fields never cross the proxy at all.
_NOT_TRAILERS = HOP_BY_HOP | {b"content-length", b"host"}


def last_chunk(
    trailers: list[tuple[bytes, bytes]] | None, head: Iterable[tuple[bytes, bytes]] = ()
) -> bytes:
    """The end of a chunked body, carrying the trailer fields received (minus the ones that
    cannot be trailers, and those the message's ``head`` names in Connection: RFC 9110
    section 7.6.1): trailers stay in the trailer section, never merged into a head."""
    if not trailers:
        return LAST_CHUNK
    drop = _NOT_TRAILERS | connection_tokens(head)
    kept = [(n, v) for n, v in trailers if n.lower() not in drop]
    return b"0\r\n" + serialize_headers(kept) + b"\r\n"


def error_response(
    status: int,
    error: str,
    release: str | None,
    detail: str,
    *,
    close: bool,
    retry_after: int | None = None,
) -> bytes:
    """A complete JSON error response made by the proxy itself (400, 408, 413, 414, 431, 500,
    502, 503, 504)."""
    body: dict[str, str] = {"error": error}
    if release is not None:
        body["release"] = release
    body["detail"] = detail
    payload = orjson.dumps(body)
    head = [
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(payload)).encode()),
        (b"Cache-Control", b"no-store"),
    ]
    if release is not None:
        head.append((b"X-Switchback-Release", release.encode()))
    if retry_after is not None:
        head.append((b"Retry-After", str(retry_after).encode()))
    if close:
        head.append((b"Connection", b"close"))
    return status_line(status) + serialize_headers(head) + b"\r\n" + payload


def refusal_response(refusal: Refused, *, close: bool = True) -> bytes:
    """The JSON error for a request Switchback answers itself."""
    return error_response(
        refusal.status,
        refusal.code,
        refusal.release,
        refusal.detail,
        close=close,
        retry_after=refusal.retry_after,
    )


def request_head(
    ex: Exchange,
    peer: bytes,
    trust_forwarded: bool,
    chunked: bool,
    upgrade: bytes | None,
    drop: frozenset[bytes] | None = None,
) -> bytes:
    """The request head sent to a release: method and target exactly as received, the
    end-to-end headers in their order, then X-Forwarded-For (appended), -Proto and -Host.

    One pass over the headers: a Connection header that names further fields (rare) makes
    it start again, dropping those too (``drop``; None: the fixed set)."""
    headers = ex.headers
    fixed = drop is None
    if drop is None:
        drop = HOP_BY_HOP
    out = [b"%s %s HTTP/1.1\r\n" % (ex.method.encode("ascii"), ex.target)]
    xff: bytes | None = None
    host: bytes | None = None
    proto: bytes | None = None
    fhost: bytes | None = None
    for name, value in headers:
        lname = name.lower()
        if lname in drop:
            if lname == b"connection" and fixed and value.lower() not in _PLAIN_CONNECTION:
                more = hop_by_hop(headers)
                return request_head(ex, peer, trust_forwarded, chunked, upgrade, more)
            continue
        if lname[:12] == b"x-forwarded-":
            if lname == b"x-forwarded-for":
                xff = value if xff is None else xff + b", " + value
                continue
            if lname == b"x-forwarded-proto":
                proto = value if trust_forwarded else proto
                continue
            if lname == b"x-forwarded-host":
                fhost = value if trust_forwarded else fhost
                continue
        elif lname == b"host":
            host = value
        out += (name, b": ", value, b"\r\n")  # cheaper than formatting each line
    out.append(b"X-Forwarded-For: %s\r\n" % (xff + b", " + peer if xff else peer))
    out.append(b"X-Forwarded-Proto: %s\r\n" % (proto or b"http"))
    if fhost or host:
        out.append(b"X-Forwarded-Host: %s\r\n" % (fhost or host))
    if upgrade is not None:
        out.append(b"Connection: Upgrade\r\nUpgrade: %s\r\n" % upgrade)
    if chunked:
        out.append(b"Transfer-Encoding: chunked\r\n")
    out.append(b"\r\n")
    return b"".join(out)


_SERVED_BY: dict[str, bytes] = {}
_HOP_AND_LENGTH = HOP_BY_HOP | {b"content-length"}


def response_head(
    ex: Exchange,
    reason: bytes,
    served_by: bool,
    close: bool,
    is_head: bool,
    http10: bool,
    drop: frozenset[bytes] | None = None,
) -> tuple[bytes, bool, bool]:
    """The response head sent to the client: (head, body is chunked, connection must close).

    The release's framing is kept where it can be (Content-Length stays); a body delimited
    by chunks or by the release closing is sent chunked to HTTP/1.1 clients and delimited by
    closing the connection to HTTP/1.0 clients. One pass over the headers, as in
    ``request_head``."""
    status = ex.status
    headers = ex.response_headers
    fixed = drop is None
    if drop is None:
        # A 204 carries no Content-Length (RFC 9110 section 8.6), whatever the release sent.
        drop = HOP_BY_HOP if status != 204 else _HOP_AND_LENGTH
    has_length = False
    upgrade: bytes | None = None
    out = [status_line(status, reason)]
    for name, value in headers:
        lname = name.lower()
        if lname in drop:
            if lname == b"upgrade":
                upgrade = value
            elif lname == b"connection" and fixed and value.lower() not in _PLAIN_CONNECTION:
                more = hop_by_hop(headers) | (drop - HOP_BY_HOP)
                return response_head(ex, reason, served_by, close, is_head, http10, more)
            continue
        if lname == b"content-length":
            has_length = True
        out += (name, b": ", value, b"\r\n")  # cheaper than formatting each line
    for name, value in ex.add_headers:
        out += (name, b": ", value, b"\r\n")  # cheaper than formatting each line
    if served_by:
        line = _SERVED_BY.get(ex.release)
        if line is None:  # one line per release name, made once
            line = _SERVED_BY[ex.release] = b"X-Served-By: %s\r\n" % ex.release.encode()
        out.append(line)
    if status == 101:
        out.append(b"Connection: Upgrade\r\nUpgrade: %s\r\n\r\n" % (upgrade or b"websocket"))
        return b"".join(out), False, False
    chunked = False
    must_close = False
    if not (is_head or status in NO_BODY_STATUS or status < 200 or has_length):
        if http10:
            must_close = True
        else:
            chunked = True
            out.append(b"Transfer-Encoding: chunked\r\n")
    if close or must_close:
        out.append(b"Connection: close\r\n")
    elif http10:
        out.append(b"Connection: keep-alive\r\n")
    out.append(b"\r\n")
    return b"".join(out), chunked, must_close
