"""The failure policy, rule by rule: what Switchback does when a release fails an exchange."""

from __future__ import annotations

import pytest

from proxy.http.failures import Abort, Action, Answer, Facts, FailOver, Failure, Retry, decide

STALE = {"got_bytes": False, "reused": True, "holds_request": True, "replayable": True}


@pytest.mark.parametrize(
    ("facts", "action"),
    [
        # The response has begun: whatever failed, the client's connection is cut.
        (Facts(Failure.LOST, head_sent=True, **STALE), Abort()),
        (Facts(Failure.TIMEOUT, head_sent=True), Abort()),
        (Facts(Failure.INVALID, head_sent=True), Abort()),
        # Refused connection: the other release if it carries traffic, once.
        (Facts(Failure.UNAVAILABLE, fallback="blue"), FailOver("blue")),
        (Facts(Failure.UNAVAILABLE, fallback="blue", failed_over=True),
         Answer(502, "upstream_unavailable")),
        (Facts(Failure.UNAVAILABLE), Answer(502, "upstream_unavailable")),
        # A stale keep-alive connection: sent once more, only when all of that holds.
        (Facts(Failure.LOST, **STALE), Retry()),
        (Facts(Failure.LOST, **{**STALE, "retried": True}), Answer(502, "upstream_broken")),
        (Facts(Failure.LOST, **{**STALE, "got_bytes": True}), Answer(502, "upstream_broken")),
        (Facts(Failure.LOST, **{**STALE, "reused": False}), Answer(502, "upstream_broken")),
        (Facts(Failure.LOST, **{**STALE, "replayable": False}), Answer(502, "upstream_broken")),
        (Facts(Failure.LOST, **{**STALE, "holds_request": False}),
         Answer(502, "upstream_broken")),
        # A fallback never matters once the request may have reached the release.
        (Facts(Failure.LOST, fallback="blue"), Answer(502, "upstream_broken")),
        (Facts(Failure.TIMEOUT, fallback="blue"), Answer(504, "upstream_timeout")),
        (Facts(Failure.INVALID, **STALE), Answer(502, "upstream_invalid")),
    ],
)  # fmt: skip
def test_decide(facts: Facts, action: Action) -> None:
    assert decide(facts) == action
