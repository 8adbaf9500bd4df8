"""Whether a candidate release answers a request the way the stable release did: pure decisions.

``compare(stable, candidate, ...)`` takes two whole answers (status, Content-Type,
Content-Encoding, body as received) and returns their differences (``proxy.core.jsondiff``):

    a status that differs     one ``status_changed`` (the bodies of two statuses are not
                              expected to look alike, so nothing more is compared)
    two JSON answers          their structural differences (``jsondiff.diff``)
    JSON, then not JSON       one ``type_changed`` at the root (the candidate's answer is not
                              JSON any more, or does not parse)
    neither answer is JSON    nothing: only JSON answers are compared

``route_label`` names the route of a request for the diff counters with a bounded set of
values: the template of a deprecation rule whose route matches (``/users/{id}``), else the path
with what looks like an id collapsed to ``{id}``, cut after ``MAX_SEGMENTS`` segments.

``redact`` keeps a request's headers for an example with the credentials replaced.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import orjson

from proxy.core.bodyinspect import decoded_copy, is_json_content_type
from proxy.core.jsondiff import STATUS_CHANGED, TYPE_CHANGED, Difference, diff
from proxy.core.jsonpaths import JsonPath
from proxy.core.rules import Rule

MAX_SEGMENTS = 6
REDACTED = b"[redacted]"
CREDENTIAL_HEADERS = frozenset({b"authorization", b"cookie", b"proxy-authorization"})
# A path segment that names one thing rather than a collection: a number, a UUID, a long hex
# or mixed letters-and-digits token (an opaque id), or an email-like value.
_ID = re.compile(
    r"\d+|[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{16,}|(?=[^/]*\d)[A-Za-z0-9_-]{12,}|[^/]*@[^/]*"
)


class Answer(NamedTuple):
    """One release's whole answer to a request."""

    status: int
    content_type: bytes | None
    content_encoding: bytes | None
    body: bytes


def parse_json(answer: Answer, cap: int) -> tuple[bool, object]:
    """(True, value) for a JSON answer that parses; (False, None) otherwise."""
    if not is_json_content_type(answer.content_type) or not answer.body:
        return False, None
    raw = decoded_copy(answer.body, answer.content_encoding, cap)
    if isinstance(raw, str):  # a reason it could not be decoded
        return False, None
    try:
        return True, orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False, None


def compare(
    stable: Answer,
    candidate: Answer,
    ignore: Sequence[JsonPath] = (),
    values: bool = False,
    cap: int = 8 * 1024 * 1024,
) -> list[Difference]:
    if stable.status != candidate.status:
        return [Difference("", STATUS_CHANGED)]
    is_json, old = parse_json(stable, cap)
    if not is_json:
        return []
    still_json, new = parse_json(candidate, cap)
    if not still_json:
        return [Difference("", TYPE_CHANGED)]
    return diff(old, new, ignore, values)


def route_label(method: str, raw_path: str, rules: Iterable[Rule]) -> str:
    for rule in rules:
        route = rule.route
        if route is not None and route.segments is not None and route.matches(method, raw_path):
            return route.text.split()[-1]
    return collapse(raw_path)


def collapse(raw_path: str) -> str:
    segments = raw_path.split("/")[1:]
    kept = ["{id}" if _ID.fullmatch(s) else s for s in segments[:MAX_SEGMENTS]]
    if len(segments) > MAX_SEGMENTS:
        kept.append("...")
    return "/" + "/".join(kept)


def redact(
    headers: Iterable[tuple[bytes, bytes]], api_key_header: str | None
) -> list[tuple[str, str]]:
    """The headers as text, with every credential's value replaced by ``[redacted]``."""
    secret = set(CREDENTIAL_HEADERS)
    if api_key_header:
        secret.add(api_key_header.lower().encode("latin-1"))
    return [
        (
            name.decode("latin-1"),
            (REDACTED if name.lower() in secret else value).decode("latin-1"),
        )
        for name, value in headers
    ]
