"""Progressive rollout: a pure state machine over plain values (after h11's ``_state.py``).

Theory of operation
-------------------
A rollout moves the candidate release's weight up a list of steps (say 1, 5, 10, 25, 50, 100
percent), holding each for ``step_seconds`` while the runtime feeds it, once a second or so, a
``tick`` with the candidate's and the stable release's statistics over the step so far:

- a breach (``judge`` says "fail": 5xx rate or p99 above the limits) rolls back at once, at any
  moment of the step, as soon as the candidate has ``min_requests`` requests in the window;
- when the step's time is up, "pass" moves to the next step, while "hold" (too few requests to
  judge: "no data" is never a pass nor a fail) restarts the same step's timer;
- passing the last step (100%) ends the rollout: ``promoted`` when ``auto_promote`` is on,
  otherwise ``awaiting_promotion`` until an operator promotes.

Operators can ``pause`` and ``resume`` (resuming restarts the step's timer), ``promote`` by hand,
and ``rollback`` from any state: "take it out now" must always work, so rollback is legal
everywhere and idempotent, and always asks for the candidate's weight to be 0.

    event \\ state  idle  ramping  paused  awaiting_promotion  rolled_back  promoted
    start          ramp                                        ramp         ramp
    tick           -     judge    -       -                   -            -
    pause                paused
    resume                        ramping
    rollback       rb    rb       rb      rb                  rb           rb
    promote        prom  prom     prom    prom

Every transition is a row of ``TRANSITIONS``; a missing pair raises ``RolloutError``. ``apply``
reads no clock and does no I/O: the caller passes ``now`` (wall-clock seconds, since the rollout
is persisted and its step timer must survive a restart) and carries out the ``Transition``:
first set the candidate's weight when ``candidate_weight`` is not None, then, when ``promote``
is set, swap the roles, so that the promoted release is stable at 100% and the old one is the
candidate at 0%.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any, Final, Literal

import msgspec

from proxy.core.window import WindowStats
from proxy.errors import RolloutError
from proxy.schema import RolloutConfig

State = Literal["idle", "ramping", "paused", "awaiting_promotion", "rolled_back", "promoted"]
IDLE: Final = "idle"
RAMPING: Final = "ramping"
PAUSED: Final = "paused"
AWAITING_PROMOTION: Final = "awaiting_promotion"
ROLLED_BACK: Final = "rolled_back"
PROMOTED: Final = "promoted"
STATES: tuple[State, ...] = (IDLE, RAMPING, PAUSED, AWAITING_PROMOTION, ROLLED_BACK, PROMOTED)

START, TICK, PAUSE, RESUME, ROLLBACK, PROMOTE = (
    "start", "tick", "pause", "resume", "rollback", "promote"
)  # fmt: skip
EVENTS = (START, TICK, PAUSE, RESUME, ROLLBACK, PROMOTE)


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """What ``judge`` needs: how much data, and how bad the candidate may be."""

    min_requests: int  # candidate requests in the window before judging at all
    max_error_rate: float  # 5xx rate floor: breach above max(this, factor x stable's rate)
    error_rate_factor: float
    max_p99_ms: float  # p99 floor: breach above max(this, factor x stable's p99)
    p99_factor: float


class Rollout(msgspec.Struct, frozen=True, kw_only=True):
    """A rollout's settings and progress; replaced whole by every transition, and persisted."""

    state: State = IDLE
    steps: tuple[float, ...]  # candidate weights in percent, increasing, ending at 100
    step_index: int = 0
    step_seconds: float
    thresholds: Thresholds
    auto_promote: bool = False
    step_started_at: float = 0.0
    reason: str | None = None  # why the last rollback or hold happened
    updated_at: float = 0.0

    @property
    def min_requests(self) -> int:
        return self.thresholds.min_requests

    @property
    def weight(self) -> float:
        """The weight of the step in force (meaningful while ramping, paused or awaiting)."""
        return self.steps[self.step_index]

    @classmethod
    def from_config(cls, cfg: RolloutConfig, overrides: Mapping[str, Any]) -> Rollout:
        """An idle rollout from the config's defaults with ``POST /rollout`` overrides on top."""
        unknown = sorted(set(overrides) - set(_CHECKS))
        if unknown:
            raise RolloutError(
                f"rollout.{unknown[0]}: unknown setting (known: {', '.join(_CHECKS)})"
            )
        values = {key: getattr(cfg, key) for key in _CHECKS} | dict(overrides)
        for key, check in _CHECKS.items():
            problem = check(values[key])
            if problem:
                raise RolloutError(f"rollout.{key}: {values[key]!r} {problem}")
        return cls(
            steps=tuple(float(s) for s in values["steps"]),
            step_seconds=float(values["step_seconds"]),
            auto_promote=values["auto_promote"],
            thresholds=Thresholds(
                min_requests=values["min_requests"],
                max_error_rate=float(values["max_error_rate"]),
                error_rate_factor=float(cfg.error_rate_factor),
                max_p99_ms=float(values["max_p99_ms"]),
                p99_factor=float(cfg.p99_factor),
            ),
        )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _check_steps(v: Any) -> str | None:
    if not isinstance(v, list | tuple) or not v or not all(_is_number(s) for s in v):
        return "is not a non-empty list of percentages"
    if not all(0 < s <= 100 for s in v):
        return "has a step outside (0, 100]"
    if any(round(s, 2) != s for s in v):
        return "has a step with more than two decimals"
    if any(a >= b for a, b in pairwise(v)):
        return "is not strictly increasing"
    if v[-1] != 100:
        return "does not end at 100"
    return None


# The settings POST /rollout may override, each with its check (a complaint, or None when fine).
_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "steps": _check_steps,
    "step_seconds": lambda v: None if _is_number(v) and v > 0 else "is not a positive duration",
    "min_requests": lambda v: (
        None
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1
        else "is not an integer >= 1"
    ),
    "max_error_rate": lambda v: None if _is_number(v) and 0 <= v <= 1 else "is not a rate (0-1)",
    "max_p99_ms": lambda v: None if _is_number(v) and v >= 0 else "is not a duration >= 0",
    "auto_promote": lambda v: None if isinstance(v, bool) else "is not true or false",
}


# -- judgement --
class Verdict(msgspec.Struct, frozen=True):
    outcome: Literal["pass", "hold", "fail"]
    reason: str


def judge(candidate: WindowStats, stable: WindowStats, t: Thresholds) -> Verdict:
    """Compare the candidate with the stable release over the same window.

    Hold while the candidate has fewer than ``t.min_requests`` requests. Fail when its 5xx rate
    exceeds max(floor, factor x stable's) or its p99 does. Stable's figures only count when it
    has ``t.min_requests`` requests too; otherwise the floors alone apply (never looser).
    """
    if candidate.requests == 0 or candidate.requests < t.min_requests:
        return Verdict("hold", f"{candidate.requests} of {t.min_requests} requests")
    c, s = candidate.release or "candidate", stable.release or "stable"
    compare = stable.requests >= t.min_requests and stable.requests > 0
    breaches = []
    err_limit = t.max_error_rate
    err_rule = _pct(t.max_error_rate)
    if compare:
        err_limit = max(err_limit, t.error_rate_factor * stable.error_rate)
        err_rule = f"max({err_rule}, {t.error_rate_factor:g}x {s} {_pct(stable.error_rate)})"
    if candidate.error_rate > err_limit:
        breaches.append(f"{c} 5xx rate {_pct(candidate.error_rate)} > {err_rule}")
    c_p99 = candidate.p99_ms or 0.0
    p99_limit = t.max_p99_ms
    p99_rule = _ms(t.max_p99_ms)
    if compare and stable.p99_ms is not None:
        p99_limit = max(p99_limit, t.p99_factor * stable.p99_ms)
        p99_rule = f"max({p99_rule}, {t.p99_factor:g}x {s} {_ms(stable.p99_ms)})"
    if c_p99 > p99_limit:
        breaches.append(f"{c} p99 {_ms(c_p99)} > {p99_rule}")
    if breaches:
        return Verdict("fail", "; ".join(breaches))
    return Verdict(
        "pass",
        f"{c} 5xx rate {_pct(candidate.error_rate)}, p99 {_ms(c_p99)} "
        f"over {candidate.requests} requests",
    )


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _ms(ms: float) -> str:
    return f"{ms:.0f} ms"


# -- transitions --
class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """What an event did: the new rollout, and what the runtime must carry out."""

    rollout: Rollout
    candidate_weight: float | None = None  # None: leave the weights alone
    promote: bool = False  # swap stable and candidate (after applying candidate_weight)
    rolled_back: bool = False
    reason: str | None = None
    log: str = ""  # one human line describing the change; empty when nothing changed


Stats = tuple[WindowStats, WindowStats]  # (candidate, stable) over the same window
_Handler = Callable[[Rollout, float, Stats | None, str | None], Transition]


def apply(
    rollout: Rollout,
    event: str,
    now: float,
    stats: Stats | None = None,
    reason: str | None = None,
) -> Transition:
    """The transition ``event`` causes at time ``now``; raises ``RolloutError`` when illegal.

    ``stats`` (candidate, stable) feed ``tick`` (missing stats count as no data); ``reason``
    is the operator's explanation for ``rollback`` (default "manual").
    """
    handler = TRANSITIONS.get((rollout.state, event))
    if handler is None:
        raise RolloutError(f"can't handle event {event!r} in state {rollout.state!r}")
    return handler(rollout, now, stats, reason)


def _start(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    new = _replace(r, now, state=RAMPING, step_index=0, step_started_at=now, reason=None)
    return Transition(
        rollout=new,
        candidate_weight=new.weight,
        log=f"rollout started: candidate at {new.weight:g}% (step 1 of {len(r.steps)}, "
        f"{r.step_seconds:g} s each)",
    )


def _unchanged(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    return Transition(rollout=r)


def _tick(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    candidate, stable = stats if stats is not None else (WindowStats(), WindowStats())
    verdict = judge(candidate, stable, r.thresholds)
    if verdict.outcome == "fail":
        return _rollback(r, now, stats, verdict.reason)
    if now - r.step_started_at < r.step_seconds:
        return Transition(rollout=r)
    step = f"step {r.step_index + 1} of {len(r.steps)} ({r.weight:g}%)"
    if verdict.outcome == "hold":
        held = f"hold: {verdict.reason}"
        new = _replace(r, now, step_started_at=now, reason=held)
        return Transition(rollout=new, reason=held, log=f"{step} held, timer restarted: {held}")
    if r.step_index + 1 < len(r.steps):
        new = _replace(r, now, step_index=r.step_index + 1, step_started_at=now, reason=None)
        return Transition(
            rollout=new,
            candidate_weight=new.weight,
            log=f"{step} passed ({verdict.reason}); candidate now at {new.weight:g}%",
        )
    if r.auto_promote:
        return Transition(
            rollout=_replace(r, now, state=PROMOTED, reason=None),
            candidate_weight=100.0,
            promote=True,
            log=f"{step} passed ({verdict.reason}); candidate promoted automatically",
        )
    return Transition(
        rollout=_replace(r, now, state=AWAITING_PROMOTION, reason=None),
        log=f"{step} passed ({verdict.reason}); awaiting promotion",
    )


def _pause(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    return Transition(
        rollout=_replace(r, now, state=PAUSED),
        log=f"rollout paused at {r.weight:g}% (step {r.step_index + 1} of {len(r.steps)})",
    )


def _resume(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    return Transition(
        rollout=_replace(r, now, state=RAMPING, step_started_at=now),
        log=f"rollout resumed at {r.weight:g}%; step timer restarted",
    )


def _rollback(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    if r.state == ROLLED_BACK:  # idempotent: keep the first reason, force the weight again
        return Transition(
            rollout=r,
            candidate_weight=0.0,
            rolled_back=True,
            reason=r.reason,
            log="already rolled back; candidate kept at 0%",
        )
    why = reason or "manual"
    return Transition(
        rollout=_replace(r, now, state=ROLLED_BACK, reason=why),
        candidate_weight=0.0,
        rolled_back=True,
        reason=why,
        log=f"rolled back from {r.state}: candidate at 0% ({why})",
    )


def _promote(r: Rollout, now: float, stats: Stats | None, reason: str | None) -> Transition:
    return Transition(
        rollout=_replace(r, now, state=PROMOTED, reason=None),
        candidate_weight=100.0,
        promote=True,
        log=f"candidate promoted by hand from {r.state}",
    )


def _replace(r: Rollout, now: float, **changes: Any) -> Rollout:
    return msgspec.structs.replace(r, updated_at=now, **changes)


TRANSITIONS: dict[tuple[State, str], _Handler] = {
    (IDLE, START): _start,
    (ROLLED_BACK, START): _start,
    (PROMOTED, START): _start,
    (RAMPING, TICK): _tick,
    **{(state, TICK): _unchanged for state in STATES if state != RAMPING},
    (RAMPING, PAUSE): _pause,
    (PAUSED, RESUME): _resume,
    **{(state, ROLLBACK): _rollback for state in STATES},
    (IDLE, PROMOTE): _promote,
    (RAMPING, PROMOTE): _promote,
    (PAUSED, PROMOTE): _promote,
    (AWAITING_PROMOTION, PROMOTE): _promote,
}
