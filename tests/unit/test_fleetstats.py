"""Fleet-wide judging: window counts that add up, fresh entries summed, the fleet's tick."""

from __future__ import annotations

import random

import msgspec

from proxy.core.fleetstats import (
    Counts,
    StatsEntry,
    decode_entry,
    encode_entry,
    fleet_stats,
    fleet_tick,
    sum_entries,
)
from proxy.core.rollout import Rollout
from proxy.core.verdict import Thresholds
from proxy.core.window import ReleaseWindow, WindowStats, merge

T = Thresholds(min_requests=30, max_error_rate=0.05, error_rate_factor=2.0, max_p99_ms=500,
               p99_factor=1.5)  # fmt: skip
NOW = 1_800_000_000.0


def test_three_windows_merged_judge_as_one_window_holding_all_their_traffic() -> None:
    rng = random.Random(7)
    parts = [ReleaseWindow("green", 60) for _ in range(3)]
    whole = ReleaseWindow("green", 60)
    for i in range(900):
        status = 500 if rng.random() < 0.03 else 200
        duration = rng.expovariate(1 / 0.05)
        now = 100.0 + i / 30
        parts[i % 3].record(status, duration, now)
        whole.record(status, duration, now)
    summed = merge([p.counts(130.0, 20) for p in parts]).stats("green")
    assert summed == whole.snapshot(130.0, 20)
    assert summed.requests == sum(p.snapshot(130.0, 20).requests for p in parts)


def test_counts_survive_the_wire_sparse() -> None:
    w = ReleaseWindow("green", 10)
    for d in (0.001, 0.001, 0.2, 70.0):
        w.record(200, d, 5.0)
    c = w.counts(5.0, 5)
    wire = Counts.of(c)
    assert len(wire.buckets) == 3
    entry = StatsEntry(replica="r0", at=NOW, step_started_at=NOW - 3, releases={"green": wire})
    back = decode_entry(encode_entry(entry))
    assert back is not None and back.releases["green"].counts() == c
    assert decode_entry(b"not json") is None


def entry(replica: str, at: float, step: float, green: int, errors: int = 0) -> StatsEntry:
    w = ReleaseWindow("green", 10)
    for i in range(green):
        w.record(500 if i < errors else 200, 0.01, 5.0)
    return StatsEntry(replica=replica, at=at, step_started_at=step,
                      releases={"green": Counts.of(w.counts(5.0, 5))})  # fmt: skip


def test_only_fresh_entries_of_the_step_in_force_are_summed() -> None:
    entries = [
        entry("r0", NOW - 1, 10.0, 12),
        entry("r1", NOW - 0.5, 10.0, 11),
        entry("r2", NOW - 30, 10.0, 50),  # silent for 30 s: gone
        entry("r3", NOW, 9.0, 50),  # counted over the step before
    ]
    sums, used = sum_entries(entries, NOW, 3.0, 10.0)
    assert used == ["r0", "r1"]
    assert sums["green"].requests == 23


def ramping() -> Rollout:
    return Rollout(state="ramping", steps=(10.0, 100.0), step_seconds=5.0, thresholds=T,
                   step_started_at=NOW - 10)  # fmt: skip


def stats(requests: int, errors: int = 0) -> tuple[WindowStats, WindowStats]:
    rate = errors / requests if requests else 0.0
    p99 = 10.0 if requests else None
    cand = WindowStats(release="green", requests=requests, errors=errors, error_rate=rate,
                       p99_ms=p99)  # fmt: skip
    return cand, WindowStats(release="blue")


def test_the_leader_advances_on_the_sum_although_no_replica_alone_could() -> None:
    sums, _ = sum_entries([entry(f"r{i}", NOW, NOW - 10, 12) for i in range(3)], NOW, 3, NOW - 10)
    fleet = fleet_stats(sums, "green", "blue")
    assert fleet[0].requests == 36
    local = stats(12)
    alone = fleet_tick(ramping(), NOW, local, local)  # one replica's own figures: hold
    assert alone.rollout.step_index == 0 and alone.rollout.reason is not None
    tr = fleet_tick(ramping(), NOW, local, fleet)
    assert tr.rollout.step_index == 1 and tr.candidate_weight == 100.0


def test_without_the_fleets_figures_nothing_advances() -> None:
    tr = fleet_tick(ramping(), NOW, stats(100), None)  # not the leader, or Redis away
    assert tr.rollout == ramping() and tr.candidate_weight is None


def test_a_local_breach_rolls_back_whoever_leads() -> None:
    tr = fleet_tick(ramping(), NOW, stats(40, errors=20), None)
    assert tr.rolled_back and tr.candidate_weight == 0.0
    assert tr.breach is not None and tr.breach.value == "error_rate"


def test_a_breach_in_the_fleets_sum_rolls_back() -> None:
    sums, _ = sum_entries([entry(f"r{i}", NOW, NOW - 10, 12, errors=4) for i in range(3)], NOW,
                          3, NOW - 10)  # fmt: skip
    tr = fleet_tick(ramping(), NOW, stats(12, errors=4), fleet_stats(sums, "green", "blue"))
    assert tr.rolled_back
    assert msgspec.structs.replace(tr.rollout, updated_at=0).state == "rolled_back"
