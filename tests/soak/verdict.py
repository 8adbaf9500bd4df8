"""Whether what a client got is right for its request: the soak's pass rule, as pure functions.

Clean outcomes (``Verdict.failure`` False):
    ok                       a complete 200 whose id (head and body) is the request's own, whose
                             body is byte for byte what the release named in X-Served-By sends
                             for this request, and which echoes this request's method and body
    <status> <error>         Switchback's JSON 502/503/504, naming the release
    cut                      the connection ended after part of the answer had arrived
                             (Switchback cutting off an answer the release broke off)
    dropped_after_close      a pipelined request behind an answer that ended the connection
Failures:
    foreign_response         an answer, or any part of one, carrying another request's id
    incomplete_as_complete   a complete framing around the first part of the right body
    corrupt_body             any other wrong byte, header or echo
    request_mismatch         the release echoes another method or body than this request's
    closed_without_response  the connection ended before any byte of the answer
    hang                     no byte for longer than Switchback's timeouts plus a margin
    bad_framing              bytes that are not an HTTP/1.1 response
    bad_error                a 502/503/504 that is not Switchback's JSON error
    unexpected_status        any other status
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import orjson

from tests.soak.plans import meta, response_body
from tests.soak.wire import Broken, Response

RELEASES = ("blue", "green")
# The ids the soak's clients give their requests (``load``): phase, client, serial number.
REQUEST_ID = re.compile(rb"\b[wr]\d{2,}-\d{6}\b")
_META = re.compile(rb'\{"id":"([^"]*)","release":"([^"]*)",.*?"pad_len":(\d+)')


@dataclass(frozen=True)
class Sent:
    request_id: str
    method: str
    body: bytes
    shape: str  # get | post | chunked, with "+pipelined" on pipelined connections
    sent_at: float  # the event loop's clock when its first byte was written


@dataclass(frozen=True)
class Verdict:
    kind: str
    failure: bool
    release: str | None = None  # the release the answer names, when it names one
    detail: str = ""


def ok(kind: str, release: str | None = None) -> Verdict:
    return Verdict(kind, False, release)


def fail(kind: str, detail: str, release: str | None = None) -> Verdict:
    return Verdict(kind, True, release, detail)


def judge(sent: Sent, resp: Response) -> Verdict:
    if resp.status == 200:
        return _judge_200(sent, resp)
    if resp.status in (502, 503, 504):
        return _judge_error(resp)
    return fail("unexpected_status", f"status {resp.status}")


def foreign_ids(sent: Sent, data: bytes) -> list[str]:
    """The ids of other requests that ``data`` carries."""
    return sorted({m.decode() for m in REQUEST_ID.findall(data)} - {sent.request_id})


def judge_broken(sent: Sent, exc: Broken) -> Verdict:
    others = foreign_ids(sent, exc.excerpt)
    if others:  # whatever came of it, bytes of another answer reached this request
        return fail("foreign_response", f"bytes of {others}, then {exc.kind}: {exc.why}")
    if exc.kind == "hang":
        return fail("hang", exc.why)
    if exc.kind == "framing":
        return fail("bad_framing", exc.why)
    head = exc.head
    if head is not None:
        served = head.first("x-served-by")
        ids = head.values("x-request-id")
        if head.status == 200 and ids != [sent.request_id]:
            return fail("foreign_response", f"head X-Request-Id {ids}, then {exc.why}", served)
        return ok("cut", served)
    if exc.got:
        return ok("cut")
    return fail("closed_without_response", exc.why)


def expected_body(sent: Sent, release: str, pad_len: int, as_json: bool) -> bytes:
    digest = hashlib.sha256(sent.body).hexdigest()
    info = meta(release, sent.request_id, sent.method, len(sent.body), digest, pad_len)
    return response_body(as_json, info)[0]


def _judge_200(sent: Sent, resp: Response) -> Verdict:
    own = sent.request_id
    served = resp.first("x-served-by")
    ids = resp.values("x-request-id")
    found = _META.match(resp.body)
    if any(i != own for i in ids) or (found and found[1].decode() != own):
        body_id = found[1].decode() if found else None
        return fail("foreign_response", f"X-Request-Id {ids}, body id {body_id}", served)
    if len(ids) != 1 or served not in RELEASES:
        return fail("corrupt_body", f"X-Request-Id {ids}, X-Served-By {served}", served)
    as_json = (resp.first("content-type") or "").startswith("application/json")
    # What the release sends for this request up to the filler's length, which only it knows.
    want = expected_body(sent, served, int(found[3]) if found else 0, as_json)
    echo = want[: want.index(b'"pad_len":') + 10]
    if found is None:
        if echo.startswith(resp.body):
            return fail(
                "incomplete_as_complete", f"{len(resp.body)} bytes, cut in the echo", served
            )
        return fail("corrupt_body", f"body opens {resp.body[:80]!r}", served)
    if resp.body == want:
        return ok("ok", served)
    if want.startswith(resp.body):
        return fail("incomplete_as_complete", f"{len(resp.body)} of {len(want)} bytes", served)
    others = foreign_ids(sent, resp.body)
    if others:
        return fail("foreign_response", f"a body mixed with bytes of {others}", served)
    if not resp.body.startswith(echo):
        return fail("request_mismatch", f"echo {resp.body[:200]!r}, sent {echo!r}", served)
    return fail("corrupt_body", f"{len(resp.body)} bytes, not the {len(want)} expected", served)


def _judge_error(resp: Response) -> Verdict:
    try:
        doc = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return fail("bad_error", f"{resp.status} body {resp.body[:100]!r}")
    if not isinstance(doc, dict):
        return fail("bad_error", f"{resp.status} body {resp.body[:100]!r}")
    release = doc.get("release")
    error = doc.get("error")
    if (
        not (resp.first("content-type") or "").startswith("application/json")
        or release not in RELEASES
        or resp.first("x-switchback-release") != release
        or not isinstance(error, str)
    ):
        return fail("bad_error", f"{resp.status} {resp.headers} {resp.body[:100]!r}")
    return ok(f"{resp.status} {error}", release)
