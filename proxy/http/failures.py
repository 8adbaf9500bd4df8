"""What to do when a release fails an exchange: a pure decision over plain facts.

The app must never see a request twice unless that is safe, and a client must never take a
truncated or foreign answer for a complete one:

    the response has begun (head sent)          abort the client's connection
    the connection could not be opened          fail over to the other release when it
                                                carries traffic (the app never saw the
                                                request), once; else 502 upstream_unavailable
    closed before any response byte, on a       send it once more on a fresh connection, when
    reused keep-alive connection                the proxy still holds all of it and it is
                                                idempotent (RFC 9110 section 9.2.2) or carries
                                                an Idempotency-Key; else 502 upstream_broken
    closed, or reset, otherwise                 502 upstream_broken
    no response head in time, silent mid-       504 upstream_timeout
    response, or not taking the request
    a malformed or over-long response           502 upstream_invalid
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from proxy.errors import UpstreamBroken, UpstreamInvalid, UpstreamTimeout, UpstreamUnavailable
from proxy.pipeline import Exchange

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def replayable(ex: Exchange) -> bool:
    """Whether the app may see this request twice: an idempotent method (RFC 9110 section
    9.2.2) or an Idempotency-Key. Forwarding and whole-answer calls retry a stale connection
    only then."""
    return ex.method in IDEMPOTENT or ex.header(b"idempotency-key") is not None


class Failure(enum.Enum):
    UNAVAILABLE = "connect"  # the values are the metric's kind labels
    LOST = "broken"
    TIMEOUT = "timeout"
    INVALID = "invalid"


class Facts(NamedTuple):
    failure: Failure
    head_sent: bool = False  # the response head went to the client
    got_bytes: bool = False  # the release sent something for this request
    reused: bool = False  # the connection was a kept-alive one
    holds_request: bool = True  # everything sent so far is still held (a retry can resend it)
    replayable: bool = False  # idempotent method, or an Idempotency-Key
    retried: bool = False  # already sent once more
    failed_over: bool = False  # already moved to the other release
    fallback: str | None = None  # the other release, when it carries traffic


class Retry(NamedTuple):
    """Send the request again, on a fresh connection to the same release."""


class FailOver(NamedTuple):
    """Send the request to ``release`` instead (it never reached the first one)."""

    release: str


class Answer(NamedTuple):
    """Answer the client with a JSON error: ``status`` and ``code``."""

    status: int
    code: str


class Abort(NamedTuple):
    """The response has begun: close the client's connection, so a truncated body is never
    presented as complete."""


Action = Retry | FailOver | Answer | Abort

# Status and code come from the exceptions the failures are raised as (``proxy.errors``).
_ANSWERS = {
    failure: Answer(error.status, error.code)
    for failure, error in (
        (Failure.UNAVAILABLE, UpstreamUnavailable),
        (Failure.LOST, UpstreamBroken),
        (Failure.TIMEOUT, UpstreamTimeout),
        (Failure.INVALID, UpstreamInvalid),
    )
}


def decide(facts: Facts) -> Action:
    if facts.head_sent:
        return Abort()
    if facts.failure is Failure.UNAVAILABLE and facts.fallback and not facts.failed_over:
        return FailOver(facts.fallback)
    if (
        facts.failure is Failure.LOST
        and not facts.got_bytes
        and facts.reused
        and facts.holds_request
        and facts.replayable
        and not facts.retried
    ):
        return Retry()
    return _ANSWERS[facts.failure]
