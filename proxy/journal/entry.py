"""What the journal keeps of one write, and the decisions about it: pure functions, no I/O.

A request is journaled when its method is unsafe (not GET, HEAD, OPTIONS or TRACE) and the
release chosen for it is the candidate (by weight, pin or override header), and it reached the
candidate: a request a step answered, Switchback refused, or the candidate never saw (its
connection could not be opened, so it went to the stable release) is not a write to recover.

An entry holds the request as received: method, raw target byte for byte, headers in order
(credentials redacted unless ``journal.keep_credentials``; a redacted header keeps its name
and place, with no value), and the body up to ``journal.max_body_bytes``. A longer body is kept
only as its size and SHA-256, and the entry cannot be replayed (``refused`` says why); so is one
whose body never arrived whole. The response status and outcome, and the ``Idempotency-Key``,
are kept beside it.

``replay_request`` makes the bytes a replay sends: the same head the candidate was sent
(``proxy.http.http1.request_head``: method and target as received, end-to-end headers in their
order, X-Forwarded-For naming the original client), with the headers a replay adds put in the
place of a header of the same name (a redacted one included), or else at the end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import msgspec

from proxy.http import http1
from proxy.pipeline import Exchange

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Outcomes of exchanges the candidate never processed (see ``Exchange.outcome``).
NOT_SERVED = frozenset(
    {"answered", "bad_request", "internal_error", "rejected", "upstream_connect"}
)
CREDENTIALS = (b"authorization", b"cookie", b"proxy-authorization")

Header = tuple[bytes, bytes | None]  # (name, value); value None: redacted


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One journaled write; ``id`` is 0 until the writer stored it."""

    time: float  # unix seconds, when the exchange ended
    client: str
    peer: str
    release: str
    method: str
    target: bytes
    headers: list[Header]
    body: bytes | None  # None: not kept (over the cap, or incomplete)
    body_size: int | None  # None: unknown (the body was not copied)
    body_sha256: str | None
    refused: str | None  # why it cannot be replayed; None: replayable
    status: int  # the candidate's response status (0: none)
    outcome: str
    idempotency_key: str | None
    id: int = 0


def journals(method: str, release: str, candidate: str, stable: str) -> bool:
    """Whether a request of ``method`` routed to ``release`` is a write to keep."""
    return release == candidate and candidate != stable and method not in SAFE_METHODS


def credential_names(api_key_header: str | None) -> frozenset[bytes]:
    """The lower-case names of the headers that carry credentials."""
    extra = (api_key_header.strip().lower().encode("latin-1"),) if api_key_header else ()
    return frozenset((*CREDENTIALS, *extra))


def redact(
    headers: Iterable[tuple[bytes, bytes]], secret: frozenset[bytes], keep: bool
) -> list[Header]:
    """``headers`` in order, with the value of each credential header dropped unless ``keep``."""
    if keep:
        return list(headers)
    return [(n, None if n.lower() in secret else v) for n, v in headers]


def make_entry(
    ex: Exchange,
    body: bytes | None,
    now: float,
    max_body: int,
    secret: frozenset[bytes],
    keep_credentials: bool,
) -> Entry:
    """The entry for a finished exchange; ``body`` is the copy the data plane gave (None: it
    gave none, because the body was longer than it copies or never arrived whole)."""
    refused: str | None = None
    kept: bytes | None = body
    size: int | None = None
    digest: str | None = None
    if body is None:
        if ex.request_skipped == "too_large":
            refused = "body larger than telemetry.max_body_bytes: not copied, not kept"
        else:
            refused = "body not received whole"
    else:
        size = len(body)
        digest = hashlib.sha256(body).hexdigest()
        if size > max_body:
            kept = None
            refused = (
                f"body of {size} bytes is over journal.max_body_bytes ({max_body}): "
                "only its SHA-256 was kept"
            )
    key = ex.header(b"idempotency-key")
    return Entry(
        time=now,
        client=ex.client_id,
        peer=ex.peer,
        release=ex.release,
        method=ex.method,
        target=ex.target,
        headers=redact(ex.headers, secret, keep_credentials),
        body=kept,
        body_size=size,
        body_sha256=digest,
        refused=refused,
        status=ex.status,
        outcome=ex.outcome,
        idempotency_key=None if key is None else key.decode("latin-1"),
    )


def parse_header(text: str) -> tuple[bytes, bytes]:
    """``"Authorization: Bearer svc"`` -> (name, value); ValueError says what is wrong."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{text!r} is not a header (expected 'Name: value')")
    raw = name.encode("latin-1", "replace")
    if any(c in b' \t\r\n()<>@,;:\\"/[]?={}' for c in raw):
        raise ValueError(f"{name!r} is not a header name")
    value = value.strip()
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"the value of {name} has a line break or NUL")
    return raw, value.encode("latin-1", "replace")


def with_added(headers: Sequence[Header], added: Sequence[tuple[bytes, bytes]]) -> list[Header]:
    """``headers`` with each added header in the place of the first of the same name (the
    others of that name dropped), or at the end when there is none."""
    out = list(headers)
    for name, value in added:
        low = name.lower()
        places = [i for i, (n, _) in enumerate(out) if n.lower() == low]
        if not places:
            out.append((name, value))
            continue
        out[places[0]] = (out[places[0]][0], value)
        for i in reversed(places[1:]):
            del out[i]
    return out


def replay_request(
    entry: Entry, added: Sequence[tuple[bytes, bytes]], trust_forwarded: bool
) -> bytes:
    """The bytes that replay ``entry``: head and body. Redacted headers left without a value
    are not sent. Call only for a replayable entry (its body kept)."""
    body = entry.body or b""
    headers = [(n, v) for n, v in with_added(entry.headers, added) if v is not None]
    chunked = any(n.lower() == b"transfer-encoding" and b"chunked" in v.lower() for n, v in headers)
    ex = Exchange(entry.method, entry.target, headers, entry.peer)
    head = http1.request_head(ex, entry.peer.encode("latin-1"), trust_forwarded, chunked, None)
    if chunked:
        return head + (http1.chunk(body) if body else b"") + http1.LAST_CHUNK
    return head + body
