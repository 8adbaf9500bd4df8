"""The rule that reconciles a replica with the fleet's shared state (proxy.core.fleetstate)."""

from __future__ import annotations

import msgspec
import pytest

from proxy.core.fleetstate import SharedState, decode, encode, reconcile, rolled_back_release
from proxy.core.rollout import Rollout
from proxy.core.verdict import Thresholds

NOW = 1_800_000_000.0
T = Thresholds(min_requests=10, max_error_rate=0.01, error_rate_factor=2.0, max_p99_ms=500,
               p99_factor=1.5)  # fmt: skip
ROLLOUT = Rollout(steps=(10.0, 100.0), step_seconds=60.0, thresholds=T)


def state(version: int, green: float = 0.0, **changes: object) -> SharedState:
    s = SharedState(version=version, stable="blue", candidate="green",
                    weights={"blue": 100.0 - green, "green": green}, rollout=ROLLOUT)  # fmt: skip
    return msgspec.structs.replace(s, **changes)


def rolled_back(version: int) -> SharedState:
    r = msgspec.structs.replace(ROLLOUT, state="rolled_back", reason="error_rate")
    return state(version, 0.0, rollout=r, out_of_service="green")


def ramping(version: int, green: float) -> SharedState:
    return state(version, green, rollout=msgspec.structs.replace(ROLLOUT, state="ramping"))


def test_nothing_shared_seeds_the_fleet_with_the_local_state() -> None:
    a = reconcile(state(0, 20), False, None, NOW, "r0")
    assert (a.do, a.outcome, a.expect) == ("write", "seeded", 0)
    assert a.state is not None and a.state.version == 1 and a.state.weights["green"] == 20
    assert (a.state.written_by, a.state.written_at) == ("r0", NOW)


def test_after_a_redis_restart_a_replica_in_step_seeds_its_own_version() -> None:
    a = reconcile(state(7, 20), False, None, NOW, "r0")
    assert a.state is not None and a.state.version == 7 and a.expect == 0


def test_after_a_redis_restart_a_change_made_meanwhile_wins_whoever_seeds_first() -> None:
    changed = rolled_back(7)  # rolled back while Redis was away
    first = reconcile(changed, True, None, NOW, "r0")  # r0 seeds first: version 8
    assert first.state is not None and first.state.version == 8
    assert reconcile(state(7, 20), False, first.state, NOW, "r1").state == first.state
    other = reconcile(state(7, 20), False, None, NOW, "r1")  # r1 seeds first: version 7
    assert other.state is not None
    later = reconcile(changed, True, other.state, NOW, "r0")
    assert (later.do, later.expect) == ("write", 7)
    assert later.state is not None and later.state.version == 8
    assert later.state.rollout.state == "rolled_back"


def test_an_older_local_version_adopts_the_shared_one() -> None:
    shared = state(5, 50)
    a = reconcile(state(3, 10), False, shared, NOW, "r1")
    assert (a.do, a.outcome, a.state) == ("adopt", "adopted", shared)


def test_in_step_keeps() -> None:
    assert reconcile(state(5, 50), False, state(5, 50), NOW, "r1").do == "keep"


def test_the_same_version_saying_something_else_is_adopted() -> None:
    # Two replicas that started on different states (version 0, or 1 after seeding).
    shared = state(1, 50)
    a = reconcile(state(1, 10), False, shared, NOW, "r1")
    assert (a.do, a.state) == ("adopt", shared)


def test_a_shared_state_older_than_the_local_one_is_overwritten() -> None:
    a = reconcile(state(9, 50), False, state(4, 10), NOW, "r1")
    assert (a.do, a.expect) == ("write", 4)
    assert a.state is not None and a.state.version == 10 and a.state.weights["green"] == 50


def test_a_local_change_is_written_on_the_version_it_started_from() -> None:
    a = reconcile(state(5, 30), True, state(5, 10), NOW, "r2")
    assert (a.do, a.outcome, a.expect) == ("write", "written", 5)
    assert a.state is not None and a.state.version == 6 and a.state.weights["green"] == 30


def test_a_stale_local_change_is_refused_and_the_shared_state_adopted() -> None:
    shared = state(8, 50)
    a = reconcile(state(5, 30), True, shared, NOW, "r2")
    assert (a.do, a.outcome, a.state) == ("adopt", "stale_refused", shared)


def test_a_local_rollback_is_never_undone_by_a_newer_shared_state() -> None:
    # Cut off from Redis, r0 rolled back; meanwhile the fleet moved on to green 50%.
    a = reconcile(rolled_back(5), True, ramping(8, 50), NOW, "r0")
    assert (a.do, a.outcome, a.expect) == ("write", "rollback_rewritten", 8)
    assert a.state is not None and a.state.version == 9
    assert a.state.weights == {"blue": 100.0, "green": 0.0}
    assert a.state.out_of_service == "green" and a.state.rollout.state == "rolled_back"
    assert a.state.rollout.reason == "error_rate"
    assert rolled_back_release(a.state) == "green"


def test_a_rollback_the_shared_state_already_includes_is_adopted() -> None:
    shared = state(8, 0.0)  # green at 0% already (another rollback, or weights set by hand)
    a = reconcile(rolled_back(5), True, shared, NOW, "r0")
    assert (a.do, a.state) == ("adopt", shared)


def test_a_rollback_of_a_release_promoted_since_is_not_written_over_the_promotion() -> None:
    promoted = SharedState(version=8, stable="green", candidate="blue",
                           weights={"green": 100.0, "blue": 0.0},
                           rollout=msgspec.structs.replace(ROLLOUT, state="promoted"))  # fmt: skip
    a = reconcile(rolled_back(5), True, promoted, NOW, "r0")
    assert (a.do, a.state) == ("adopt", promoted)


def test_a_rollback_on_the_version_it_started_from_is_simply_written() -> None:
    a = reconcile(rolled_back(5), True, ramping(5, 10), NOW, "r0")
    assert (a.do, a.outcome, a.expect) == ("write", "written", 5)


@pytest.mark.parametrize("s", [state(3, 20), rolled_back(4), ramping(1, 10)])
def test_a_state_survives_its_encoding(s: SharedState) -> None:
    assert decode(encode(s)) == s


def test_no_rollback_is_reported_for_a_state_in_service() -> None:
    assert rolled_back_release(state(1, 0.0)) is None
    assert rolled_back_release(ramping(1, 10)) is None
