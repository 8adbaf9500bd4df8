"""The status page's history ring and recent events: bounded, sampled on time, bursts merged."""

from __future__ import annotations

import pytest

from proxy.core.history import REFUSED, RELOAD_FAILED, ROLLBACK, Events, History


def test_history_samples_every_few_seconds_and_keeps_the_newest() -> None:
    history = History(every=2.0, size=3)
    taken = []
    for tenth in range(0, 100, 5):  # a ticker every half second, for ten seconds
        now = 1000.0 + tenth / 10
        if history.due(now):
            history.add(now, {"n": tenth})
            taken.append(now)
    assert taken == [1000.0, 1002.0, 1004.0, 1006.0, 1008.0]
    samples = history.to_json()["samples"]
    assert [s["at"] for s in samples] == [1004.0, 1006.0, 1008.0]  # oldest dropped first
    assert samples[0]["n"] == 40


@pytest.mark.parametrize(("every", "size"), [(0.0, 10), (-1.0, 10), (1.0, 0)])
def test_history_refuses_settings_that_keep_nothing(every: float, size: int) -> None:
    with pytest.raises(ValueError):
        History(every=every, size=size)


def test_a_burst_of_refusals_is_one_event_with_a_count() -> None:
    events = Events(size=10, merge_seconds=60.0)
    events.add(ROLLBACK, "green taken out of service: manual", 100.0)
    for i in range(500):
        events.add(REFUSED, "head_size", 101.0 + i / 100, merge=True)
    events.add(REFUSED, "target_length", 110.0, merge=True)
    events.add(REFUSED, "head_size", 111.0, merge=True)  # behind another one: still merged
    out = events.to_json()["events"]
    assert [(e["kind"], e["detail"], e["count"]) for e in out] == [
        (REFUSED, "target_length", 1),
        (REFUSED, "head_size", 501),
        (ROLLBACK, "green taken out of service: manual", 1),
    ]
    assert out[1]["at"] == 101.0 and out[1]["last_at"] == 111.0


def test_a_refusal_long_after_the_last_is_a_new_event_and_the_ring_is_bounded() -> None:
    events = Events(size=3, merge_seconds=60.0)
    events.add(REFUSED, "head_size", 0.0, merge=True)
    events.add(REFUSED, "head_size", 61.0, merge=True)
    assert [e["count"] for e in events.to_json()["events"]] == [1, 1]
    for i in range(5):
        events.add(RELOAD_FAILED, f"config.yaml: bad {i}", 100.0 + i)  # never merged
    assert [e["detail"] for e in events.to_json()["events"]] == [
        "config.yaml: bad 4",
        "config.yaml: bad 3",
        "config.yaml: bad 2",
    ]


def test_callers_get_copies() -> None:
    events = Events()
    events.add(ROLLBACK, "x", 1.0)
    events.to_json()["events"][0]["count"] = 99
    assert events.to_json()["events"][0]["count"] == 1
