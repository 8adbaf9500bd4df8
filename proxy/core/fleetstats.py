"""Fleet-wide judging: every replica's window counts, summed, and the leader's tick. Pure.

Each replica publishes, about once a second, a ``StatsEntry``: the counts of the candidate
and of the stable release over the window the rollout in force judges (``window_seconds``),
stamped with the time and the step it was taken in. The leader sums the entries that are
fresh (newer than ``max_age``) and of the same step (``sum_entries``), and judges the rollout
on the sums with the same rules as a single replica (``proxy.core.verdict``).

``fleet_tick`` is the tick of a replica in a fleet: a breach in the replica's own window rolls
back at once, whoever leads (safety first; the rollback is then written to the shared state);
otherwise only the leader, and only while it reads the fleet's figures (``fleet`` not None),
moves the rollout on. Anyone else, or a leader cut off from Redis, holds: never a promotion.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from proxy.core.rollout import TICK, Rollout, Stats, Transition, apply
from proxy.core.window import NBUCKETS, WindowCounts, merge


class Counts(msgspec.Struct, frozen=True, array_like=True):
    """``WindowCounts`` on the wire: errors, span and the non-zero buckets only."""

    errors: int
    span_s: int
    buckets: dict[int, int]

    @classmethod
    def of(cls, c: WindowCounts) -> Counts:
        return cls(c.errors, c.span_s, {i: n for i, n in enumerate(c.hist) if n})

    def counts(self) -> WindowCounts:
        hist = [0] * NBUCKETS
        for i, n in self.buckets.items():
            if 0 <= i < NBUCKETS and n > 0:
                hist[i] = n
        return WindowCounts(errors=max(0, self.errors), hist=tuple(hist), span_s=self.span_s)


class StatsEntry(msgspec.Struct, frozen=True, kw_only=True):
    replica: str
    at: float  # wall-clock seconds when the counts were taken
    step_started_at: float  # the step they belong to (the rollout's, when taken)
    releases: dict[str, Counts]


def sum_entries(
    entries: Iterable[StatsEntry], now: float, max_age: float, step_started_at: float
) -> tuple[dict[str, WindowCounts], list[str]]:
    """Per release, the sum of the fresh entries of this step; and the replicas summed."""
    used = [e for e in entries if now - e.at <= max_age and e.step_started_at == step_started_at]
    names = sorted({name for e in used for name in e.releases})
    sums = {name: merge([e.releases[name].counts() for e in used if name in e.releases])
            for name in names}  # fmt: skip
    return sums, sorted(e.replica for e in used)


def fleet_stats(sums: dict[str, WindowCounts], candidate: str, stable: str) -> Stats:
    empty = WindowCounts()
    return (
        sums.get(candidate, empty).stats(candidate),
        sums.get(stable, empty).stats(stable),
    )


def fleet_tick(r: Rollout, now: float, local: Stats, fleet: Stats | None) -> Transition:
    """A fleet replica's tick (see the module docstring)."""
    mine = apply(r, TICK, now, local)
    if mine.rolled_back:
        return mine
    if fleet is None:
        return Transition(rollout=r)
    return apply(r, TICK, now, fleet)


def encode_entry(entry: StatsEntry) -> bytes:
    return msgspec.json.encode(entry)


def decode_entry(data: bytes | str) -> StatsEntry | None:
    """A published entry, or None when it is not one (never raises)."""
    try:
        return msgspec.json.decode(data, type=StatsEntry)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
