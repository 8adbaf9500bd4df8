"""The rollout state machine: its transition table, its judgement, and whole simulated rollouts."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core import rollout as rollout_module
from proxy.core.rollout import (
    AWAITING_PROMOTION,
    EVENTS,
    IDLE,
    MIN_WINDOW_SECONDS,
    PAUSE,
    PAUSED,
    PROMOTE,
    PROMOTED,
    RAMPING,
    RESUME,
    ROLLBACK,
    ROLLED_BACK,
    START,
    STATES,
    TICK,
    TRANSITIONS,
    Breach,
    Rollout,
    State,
    Thresholds,
    Transition,
    apply,
    judge,
    window_seconds,
)
from proxy.core.window import WindowStats
from proxy.errors import InvalidInput, RolloutError
from proxy.schema import RolloutConfig

CFG = RolloutConfig()  # steps 1, 5, 10, 25, 50, 100; 60 s each; 100 requests; 1%, 2x; 500 ms, 1.5x
T = Thresholds(
    min_requests=100, max_error_rate=0.01, error_rate_factor=2.0, max_p99_ms=500.0, p99_factor=1.5
)
T0 = 1_700_000_000.0


def stats(release: str, requests: int, errors: int = 0, p99_ms: float = 50.0) -> WindowStats:
    return WindowStats(
        release=release,
        requests=requests,
        errors=errors,
        error_rate=errors / requests if requests else 0.0,
        p99_ms=p99_ms if requests else None,
        rate_per_s=requests / 60,
    )


HEALTHY = (stats("green", 500, 1, 80.0), stats("blue", 5000, 5, 70.0))


def in_state(state: State, **changes: Any) -> Rollout:
    return msgspec.structs.replace(
        Rollout.from_config(CFG, {}), state=state, step_started_at=T0, **changes
    )


# -- the transition table --
# Where each legal (state, event) leads when nothing else happens (a tick with no data, early).
LEGAL: dict[tuple[State, str], State] = {
    (IDLE, START): RAMPING,
    (ROLLED_BACK, START): RAMPING,
    (PROMOTED, START): RAMPING,
    **{(state, TICK): state for state in STATES},
    (RAMPING, PAUSE): PAUSED,
    (PAUSED, RESUME): RAMPING,
    **{(state, ROLLBACK): ROLLED_BACK for state in STATES},
    (IDLE, PROMOTE): PROMOTED,
    (RAMPING, PROMOTE): PROMOTED,
    (PAUSED, PROMOTE): PROMOTED,
    (AWAITING_PROMOTION, PROMOTE): PROMOTED,
    (ROLLED_BACK, PROMOTE): PROMOTED,
    (PROMOTED, PROMOTE): PROMOTED,
}
ILLEGAL = [(s, e) for s in STATES for e in EVENTS if (s, e) not in LEGAL]


def test_the_table_holds_exactly_the_legal_pairs() -> None:
    assert set(TRANSITIONS) == set(LEGAL)


def docstring_table() -> dict[tuple[str, str], str]:
    """The module docstring's table: (state, event) -> the handler its cell names ("" when
    the cell is empty). Columns start where the header names their state."""
    lines = (rollout_module.__doc__ or "").splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("event \\ state"))
    header = lines[at]
    columns = [(m.start(), m.group()) for m in re.finditer(r"\S+", header)][3:]
    assert [state for _, state in columns] == list(STATES)
    bounds = [start for start, _ in columns] + [None]
    table = {}
    rows = lines[at + 1 : lines.index("", at)]
    assert [row[: bounds[0]].strip() for row in rows] == list(EVENTS)
    for row in rows:
        event = row[: bounds[0]].strip()
        for (start, state), end in zip(columns, bounds[1:], strict=True):
            table[state, event] = row[start:end].strip()
    return table


def test_the_docstring_table_is_the_transition_table() -> None:
    table = docstring_table()
    named = {pair: cell for pair, cell in table.items() if cell}
    assert set(named) == set(TRANSITIONS)  # every pair of TRANSITIONS is in the docstring
    for pair, cell in named.items():
        assert TRANSITIONS[pair].__name__ == f"_{cell}", pair


@pytest.mark.parametrize(("state", "event"), sorted(LEGAL))
def test_legal_transition(state: State, event: str) -> None:
    tr = apply(in_state(state), event, T0 + 1)
    assert tr.rollout.state == LEGAL[state, event]


@pytest.mark.parametrize(("state", "event"), ILLEGAL)
def test_illegal_transition_names_event_and_state(state: State, event: str) -> None:
    with pytest.raises(RolloutError) as info:
        apply(in_state(state), event, T0 + 1)
    assert str(info.value) == f"can't handle event '{event}' in state '{state}'"


@pytest.mark.parametrize(
    ("state", "event", "message"),
    [
        (IDLE, PAUSE, "can't handle event 'pause' in state 'idle'"),
        (IDLE, RESUME, "can't handle event 'resume' in state 'idle'"),
        (RAMPING, START, "can't handle event 'start' in state 'ramping'"),
        (PAUSED, PAUSE, "can't handle event 'pause' in state 'paused'"),
        (AWAITING_PROMOTION, START, "can't handle event 'start' in state 'awaiting_promotion'"),
        (ROLLED_BACK, PAUSE, "can't handle event 'pause' in state 'rolled_back'"),
        (PROMOTED, RESUME, "can't handle event 'resume' in state 'promoted'"),
        (RAMPING, "explode", "can't handle event 'explode' in state 'ramping'"),
    ],
)
def test_illegal_transition_messages(state: State, event: str, message: str) -> None:
    with pytest.raises(RolloutError) as info:
        apply(in_state(state), event, T0)
    assert str(info.value) == message


def test_start_sets_the_first_step() -> None:
    tr = apply(in_state(ROLLED_BACK, step_index=3, reason="manual"), START, T0 + 5)
    assert tr.rollout.state == RAMPING
    assert (tr.rollout.step_index, tr.rollout.step_started_at, tr.rollout.reason) == (
        0,
        T0 + 5,
        None,
    )
    assert tr.candidate_weight == 1.0
    assert not tr.promote and not tr.rolled_back
    assert tr.log == "rollout started: candidate at 1% (step 1 of 6, 60 s each)"


@pytest.mark.parametrize("state", STATES)
def test_rollback_always_takes_the_candidate_out(state: State) -> None:
    tr = apply(in_state(state), ROLLBACK, T0 + 1)
    assert tr.rollout.state == ROLLED_BACK
    assert tr.candidate_weight == 0.0
    assert tr.rolled_back and not tr.promote
    assert tr.rollout.reason == tr.reason


def test_rollback_reason_defaults_to_manual_and_is_kept_when_repeated() -> None:
    assert apply(in_state(RAMPING), ROLLBACK, T0).reason == "manual"
    first = apply(in_state(RAMPING), ROLLBACK, T0, reason="bad deploy")
    assert first.rollout.reason == "bad deploy"
    again = apply(first.rollout, ROLLBACK, T0 + 9, reason="still bad")
    assert again.rollout == first.rollout
    assert (again.candidate_weight, again.reason) == (0.0, "bad deploy")


def test_start_begins_from_the_settings_given() -> None:
    fresh = Rollout.from_config(CFG, {"steps": [10, 50, 100], "step_seconds": 30})
    for state in (IDLE, ROLLED_BACK, PROMOTED):
        tr = apply(in_state(state, reason="manual"), START, T0 + 5, settings=fresh)
        assert tr.rollout == msgspec.structs.replace(
            fresh, state=RAMPING, step_started_at=T0 + 5, updated_at=T0 + 5
        )
        assert tr.candidate_weight == 10.0
        assert tr.log == "rollout started: candidate at 10% (step 1 of 3, 30 s each)"


@pytest.mark.parametrize("state", STATES)
def test_promote_swaps_the_releases(state: State) -> None:
    tr = apply(in_state(state), PROMOTE, T0 + 1)
    assert tr.rollout.state == PROMOTED
    assert tr.promote and tr.candidate_weight == 100.0 and not tr.rolled_back


@pytest.mark.parametrize("state", [ROLLED_BACK, PROMOTED])
def test_promote_after_an_ended_rollout_starts_from_the_settings_given(state: State) -> None:
    ended = in_state(state, steps=(50.0, 100.0), step_index=1, reason="bad deploy")
    fresh = Rollout.from_config(CFG, {})
    tr = apply(ended, PROMOTE, T0 + 1, settings=fresh)
    assert tr.rollout == msgspec.structs.replace(fresh, state=PROMOTED, updated_at=T0 + 1)
    assert tr.promote and tr.candidate_weight == 100.0
    # Without settings, the ended rollout's own, its progress cleared.
    alone = apply(ended, PROMOTE, T0 + 1).rollout
    assert (alone.steps, alone.step_index, alone.reason) == ((50.0, 100.0), 0, None)


BREACH = (stats("green", 500, 250, 9000.0), stats("blue", 5000))


@pytest.mark.parametrize("state", [IDLE, ROLLED_BACK, PROMOTED])
def test_tick_without_a_live_candidate_changes_nothing(state: State) -> None:
    r = in_state(state)
    assert apply(r, TICK, T0 + 3600, BREACH) == Transition(rollout=r)


@pytest.mark.parametrize("state", [PAUSED, AWAITING_PROMOTION])
def test_tick_while_paused_or_awaiting_judges_but_never_moves_on(state: State) -> None:
    r = in_state(state)
    for window in (HEALTHY, (stats("green", 3), stats("blue", 5000)), None):
        assert apply(r, TICK, T0 + 3600, window) == Transition(rollout=r)
    tr = apply(r, TICK, T0 + 3600, BREACH)
    assert tr.rollout.state == ROLLED_BACK and tr.rolled_back and tr.candidate_weight == 0.0
    assert tr.breach is Breach.ERROR_RATE
    assert (
        tr.reason == tr.rollout.reason == "green 5xx rate 50.0% > max(1.0%, 2x blue 0.0%); "
        "green p99 9000 ms > max(500 ms, 1.5x blue 50 ms)"
    )
    assert tr.log == f"rolled back from {state}: candidate at 0% ({tr.reason})"


def test_only_a_rollback_the_rollout_decided_names_a_breach() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    slow = apply(r, TICK, T0 + 2, (stats("green", 200, 0, 2500.0), stats("blue", 5000)))
    assert (slow.rolled_back, slow.breach) == (True, Breach.LATENCY)
    assert apply(r, ROLLBACK, T0 + 2, reason="p99 5xx").breach is None
    again = apply(slow.rollout, TICK, T0 + 3, BREACH)
    assert again == Transition(rollout=slow.rollout)  # rolled back: no second breach


@pytest.mark.parametrize(
    ("elapsed", "window"),
    [(0.0, MIN_WINDOW_SECONDS), (0.4, MIN_WINDOW_SECONDS), (12.5, 12.5), (60.0, 60.0), (3600, 60)],
)
def test_a_tick_judges_the_step_so_far_within_bounds(elapsed: float, window: float) -> None:
    assert window_seconds(in_state(RAMPING), T0 + elapsed) == window


# -- judgement --
@pytest.mark.parametrize(
    ("candidate", "stable", "outcome", "reason"),
    [
        pytest.param(
            stats("green", 500, 2, 120.0),
            stats("blue", 5000, 10, 100.0),
            "pass",
            "green 5xx rate 0.4%, p99 120 ms over 500 requests",
            id="pass",
        ),
        pytest.param(
            stats("green", 0), stats("blue", 5000), "hold", "0 of 100 requests", id="no-data"
        ),
        pytest.param(
            stats("green", 99, 99, 9000.0),
            stats("blue", 5000),
            "hold",
            "99 of 100 requests",
            id="too-few-requests-is-never-a-fail",
        ),  # fmt: skip
        pytest.param(
            stats("green", 500, 60),
            stats("blue", 5000, 0),
            "fail",
            "green 5xx rate 12.0% > max(1.0%, 2x blue 0.0%)",
            id="error-rate",
        ),
        pytest.param(
            stats("green", 500, 0, 812.0),
            stats("blue", 5000, 0, 120.0),
            "fail",
            "green p99 812 ms > max(500 ms, 1.5x blue 120 ms)",
            id="p99",
        ),
        pytest.param(
            stats("green", 500, 60, 812.0),
            stats("blue", 5000, 0, 120.0),
            "fail",
            "green 5xx rate 12.0% > max(1.0%, 2x blue 0.0%); "
            "green p99 812 ms > max(500 ms, 1.5x blue 120 ms)",
            id="both",
        ),
        pytest.param(
            stats("green", 500, 5),
            stats("blue", 5000),
            "pass",
            "green 5xx rate 1.0%, p99 50 ms over 500 requests",
            id="at-the-limit-passes",
        ),  # fmt: skip
        pytest.param(
            stats("green", 1000, 50),
            stats("blue", 5000, 150),
            "pass",
            "green 5xx rate 5.0%, p99 50 ms over 1000 requests",
            id="relative-error-rate-pass",
        ),  # fmt: skip
        pytest.param(
            stats("green", 1000, 70),
            stats("blue", 5000, 150),
            "fail",
            "green 5xx rate 7.0% > max(1.0%, 2x blue 3.0%)",
            id="relative-error-rate-fail",
        ),
        pytest.param(
            stats("green", 1000, 0, 1000.0),
            stats("blue", 5000, 0, 800.0),
            "pass",
            "green 5xx rate 0.0%, p99 1000 ms over 1000 requests",
            id="relative-p99-pass",
        ),  # fmt: skip
        pytest.param(
            stats("green", 1000, 0, 1300.0),
            stats("blue", 5000, 0, 800.0),
            "fail",
            "green p99 1300 ms > max(500 ms, 1.5x blue 800 ms)",
            id="relative-p99-fail",
        ),
        pytest.param(
            stats("green", 1000, 20, 600.0),
            stats("blue", 0),
            "fail",
            "green 5xx rate 2.0% > 1.0%; green p99 600 ms > 500 ms",
            id="stable-without-data-floors-only",
        ),
        pytest.param(
            stats("green", 1000, 50),
            stats("blue", 10, 5, 4000.0),
            "fail",
            "green 5xx rate 5.0% > 1.0%",
            id="stable-with-too-few-requests-floors-only",
        ),
        pytest.param(
            stats("", 500, 60),
            stats("", 5000),
            "fail",
            "candidate 5xx rate 12.0% > max(1.0%, 2x stable 0.0%)",
            id="unnamed",
        ),  # fmt: skip
    ],
)
def test_judge(candidate: WindowStats, stable: WindowStats, outcome: str, reason: str) -> None:
    verdict = judge(candidate, stable, T)
    assert (verdict.outcome, verdict.reason) == (outcome, reason)


@pytest.mark.parametrize(
    ("candidate", "breach"),
    [
        (stats("green", 500, 60), Breach.ERROR_RATE),
        (stats("green", 500, 0, 812.0), Breach.LATENCY),
        (stats("green", 500, 60, 812.0), Breach.ERROR_RATE),  # both: the first one named
        (stats("green", 500, 2, 120.0), None),  # pass
        (stats("green", 99, 99, 9000.0), None),  # hold
    ],
)
def test_a_verdict_names_its_breach(candidate: WindowStats, breach: Breach | None) -> None:
    assert judge(candidate, stats("blue", 5000, 0, 120.0), T).breach is breach


# -- whole rollouts --
def ramp(rollout: Rollout, start: float, feed: Any, until: float) -> tuple[Rollout, list[float]]:
    """Start at ``start``, tick once a second with ``feed(now)`` until the rollout stops ramping
    or ``until``; returns the rollout and every candidate weight set on the way."""
    tr = apply(rollout, START, start)
    r, weights = tr.rollout, [tr.candidate_weight]
    now = start
    while r.state == RAMPING and now < until:
        now += 1.0
        tr = apply(r, TICK, now, feed(now))
        if tr.candidate_weight is not None:
            weights.append(tr.candidate_weight)
        r = tr.rollout
    return r, [w for w in weights if w is not None]


def test_a_healthy_rollout_climbs_every_step_then_awaits_promotion() -> None:
    r, weights = ramp(Rollout.from_config(CFG, {}), T0, lambda now: HEALTHY, T0 + 3600)
    assert weights == [1.0, 5.0, 10.0, 25.0, 50.0, 100.0]
    assert r.state == AWAITING_PROMOTION
    assert r.updated_at == T0 + 6 * 60  # each step, the last (100%) included, lasts 60 s
    assert apply(r, TICK, T0 + 9999, HEALTHY).rollout == r  # waits for an operator
    done = apply(r, PROMOTE, T0 + 9999)
    assert done.rollout.state == PROMOTED and done.promote


def test_auto_promote_promotes_after_the_last_step() -> None:
    rollout = Rollout.from_config(CFG, {"auto_promote": True, "steps": [10, 100]})
    r, weights = ramp(rollout, T0, lambda now: HEALTHY, T0 + 3600)
    assert weights == [10.0, 100.0, 100.0]
    assert r.state == PROMOTED
    assert r.updated_at == T0 + 120


def test_a_step_waits_its_full_time_even_when_healthy() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    early = apply(r, TICK, T0 + 59.9, HEALTHY)
    assert early == Transition(rollout=r)
    assert early.log == ""
    assert apply(r, TICK, T0 + 60, HEALTHY).candidate_weight == 5.0


def test_a_breach_rolls_back_at_once() -> None:
    def feed(now: float) -> tuple[WindowStats, WindowStats]:
        if now < T0 + 75:
            return HEALTHY
        return stats("green", 500, 60), stats("blue", 5000, 0)

    r, weights = ramp(Rollout.from_config(CFG, {}), T0, feed, T0 + 3600)
    assert r.state == ROLLED_BACK
    assert r.updated_at == T0 + 75  # mid-step: no waiting for the step to end
    assert weights == [1.0, 5.0, 0.0]
    assert r.reason == "green 5xx rate 12.0% > max(1.0%, 2x blue 0.0%)"


def test_the_breaching_tick_reports_the_rollback() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    tr = apply(r, TICK, T0 + 2, (stats("green", 200, 0, 2500.0), stats("blue", 5000)))
    assert tr.rolled_back and tr.candidate_weight == 0.0
    assert tr.reason == "green p99 2500 ms > max(500 ms, 1.5x blue 50 ms)"
    assert tr.log == f"rolled back from ramping: candidate at 0% ({tr.reason})"


def test_no_breach_is_judged_below_min_requests() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    assert apply(r, TICK, T0 + 5, (stats("green", 99, 99), stats("blue", 5000))).rollout == r


def test_hold_restarts_the_step_timer() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    held = apply(r, TICK, T0 + 60, (stats("green", 12), stats("blue", 5000)))
    assert held.candidate_weight is None
    assert held.reason == "hold: 12 of 100 requests"
    r = held.rollout
    assert (r.state, r.step_index, r.step_started_at, r.reason) == (
        RAMPING,
        0,
        T0 + 60,
        "hold: 12 of 100 requests",
    )
    assert apply(r, TICK, T0 + 100, HEALTHY).rollout == r  # the step's time starts again
    moved = apply(r, TICK, T0 + 120, HEALTHY)
    assert (moved.candidate_weight, moved.rollout.step_index, moved.rollout.reason) == (
        5.0,
        1,
        None,
    )


def test_missing_stats_count_as_no_data() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    assert apply(r, TICK, T0 + 60).reason == "hold: 0 of 100 requests"


def test_pause_freezes_the_rollout_and_resume_restarts_the_step() -> None:
    r = apply(Rollout.from_config(CFG, {}), START, T0).rollout
    paused = apply(r, PAUSE, T0 + 30)
    assert paused.candidate_weight is None and paused.rollout.state == PAUSED
    assert apply(paused.rollout, TICK, T0 + 500, HEALTHY).rollout == paused.rollout
    resumed = apply(paused.rollout, RESUME, T0 + 1000).rollout
    assert (resumed.state, resumed.step_started_at, resumed.step_index) == (RAMPING, T0 + 1000, 0)
    assert apply(resumed, TICK, T0 + 1059, HEALTHY).rollout == resumed
    assert apply(resumed, TICK, T0 + 1060, HEALTHY).candidate_weight == 5.0


def test_a_rollout_survives_serialization() -> None:
    r = apply(Rollout.from_config(CFG, {"steps": [2.5, 100]}), START, T0).rollout
    assert msgspec.json.decode(msgspec.json.encode(r), type=Rollout) == r


# -- settings --
def test_from_config_takes_the_config_and_the_overrides() -> None:
    r = Rollout.from_config(CFG, {})
    assert r.state == IDLE
    assert r.steps == (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)
    assert (r.step_seconds, r.min_requests, r.auto_promote) == (60.0, 100, False)
    assert r.thresholds == T
    r = Rollout.from_config(
        CFG,
        {
            "steps": [10, 50, 100],
            "step_seconds": 5,
            "min_requests": 20,
            "max_error_rate": 0.05,
            "max_p99_ms": 250,
            "auto_promote": True,
        },
    )
    assert r.steps == (10.0, 50.0, 100.0)
    assert (r.step_seconds, r.min_requests, r.auto_promote) == (5.0, 20, True)
    assert (r.thresholds.max_error_rate, r.thresholds.max_p99_ms) == (0.05, 250.0)
    assert r.thresholds.error_rate_factor == CFG.error_rate_factor


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": [5, 1, 100]}, "rollout.steps: [5, 1, 100] is not strictly increasing"),
        ({"steps": []}, "rollout.steps: [] is not a non-empty list of percentages"),
        ({"steps": "1,5,100"}, "rollout.steps: '1,5,100' is not a non-empty list of percentages"),
        ({"steps": [1, 50]}, "rollout.steps: [1, 50] does not end at 100"),
        ({"steps": [0, 100]}, "rollout.steps: [0, 100] has a step outside (0, 100]"),
        ({"steps": [1, 140]}, "rollout.steps: [1, 140] has a step outside (0, 100]"),
        ({"steps": [33.333, 100]}, "rollout.steps: [33.333, 100] has a step with more than two"),
        ({"step_seconds": 0}, "rollout.step_seconds: 0 is not a positive duration"),
        ({"step_seconds": float("inf")}, "rollout.step_seconds: inf is not a positive duration"),
        ({"min_requests": 0}, "rollout.min_requests: 0 is not an integer >= 1"),
        ({"min_requests": 2.5}, "rollout.min_requests: 2.5 is not an integer >= 1"),
        ({"min_requests": True}, "rollout.min_requests: True is not an integer >= 1"),
        ({"max_error_rate": 1.5}, "rollout.max_error_rate: 1.5 is not a rate (0-1)"),
        ({"max_p99_ms": -1}, "rollout.max_p99_ms: -1 is not a duration >= 0"),
        ({"max_p99_ms": "fast"}, "rollout.max_p99_ms: 'fast' is not a duration >= 0"),
        ({"auto_promote": "yes"}, "rollout.auto_promote: 'yes' is not true or false"),
        ({"colour": "green"}, "rollout.colour: unknown setting (known: steps, step_seconds,"),
    ],
)
def test_from_config_rejects_bad_overrides(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput) as info:  # bad input (400), not an illegal move (409)
        Rollout.from_config(CFG, overrides)
    assert str(info.value).startswith(message)


# -- any sequence of events --
window_stats = st.builds(
    lambda release, n, bad, p99: stats(release, n, min(bad, n), p99),
    st.sampled_from(["green"]),
    st.integers(0, 1000),
    st.integers(0, 100),
    st.floats(1.0, 3000.0),
)
events = st.lists(
    st.tuples(
        st.sampled_from([*EVENTS, *[TICK] * 8, "explode"]),
        st.floats(0.0, 120.0),
        st.none()
        | st.just(HEALTHY)  # often enough that rollouts also get to climb and finish
        | st.tuples(window_stats, window_stats.map(lambda s: stats("blue", s.requests))),
    ),
    max_size=60,
)
settings = st.fixed_dictionaries(
    {
        "steps": st.lists(st.integers(1, 99), unique=True, max_size=5).map(
            lambda xs: [*sorted(xs), 100]
        ),
        "step_seconds": st.sampled_from([1, 30, 60]),
        "min_requests": st.integers(1, 300),
        "auto_promote": st.booleans(),
    }
)


def carried_weight(r: Rollout) -> float:
    """The candidate's weight once the runtime has carried out every transition so far."""
    if r.state in (RAMPING, PAUSED):
        return r.steps[r.step_index]
    return 100.0 if r.state == AWAITING_PROMOTION else 0.0


@given(settings, st.sampled_from(STATES), st.integers(0, 5), events)
def test_any_event_sequence_keeps_a_valid_state(
    overrides: dict[str, Any], state: State, step: int, sequence: list[tuple[str, float, Any]]
) -> None:
    r = Rollout.from_config(CFG, overrides)
    r = msgspec.structs.replace(r, state=state, step_index=min(step, len(r.steps) - 1))
    weight = carried_weight(r)
    now = T0
    for event, dt, window in sequence:
        now += dt
        legal = (r.state, event) in TRANSITIONS
        try:
            tr = apply(r, event, now, window)
        except RolloutError:
            assert not legal
            continue
        assert legal
        r = tr.rollout
        if tr.candidate_weight is not None:
            weight = tr.candidate_weight
        if tr.promote:
            weight = 100.0 - weight  # the roles swap: the old stable is the candidate now
        assert r.state in STATES
        assert 0 <= r.step_index < len(r.steps)
        assert 0.0 <= weight <= 100.0
        assert weight == carried_weight(r)
