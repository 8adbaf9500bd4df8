r"""Progressive rollout: a pure state machine over plain values (after h11's ``_state.py``).

Theory of operation
-------------------
A rollout moves the candidate release's weight up a list of steps (say 1, 5, 10, 25, 50, 100
percent), holding each for ``step_seconds`` while the runtime feeds it, once a second or so, a
``tick`` with the candidate's and the stable release's statistics over the step so far
(``window_seconds``), judged by ``proxy.core.verdict.judge``:

- a breach (5xx rate or p99 above the limits) rolls back at once, at any moment of the step, as
  soon as the candidate has ``min_requests`` requests in the window;
- when the step's time is up, "pass" moves to the next step, while "hold" (too few requests to
  judge: "no data" is never a pass nor a fail) restarts the same step's timer;
- passing the last step (100%) ends the rollout: ``promoted`` when ``auto_promote`` is on,
  otherwise ``awaiting_promotion`` until an operator promotes;
- paused or awaiting promotion, the candidate still carries traffic, so a tick still judges
  (``watch``): a breach rolls back, anything else changes nothing.

Operators can ``pause`` and ``resume`` (resuming restarts the step's timer), ``promote`` by hand,
and ``rollback`` from any state: "take it out now" must always work, so rollback is legal
everywhere and idempotent, and always asks for the candidate's weight to be 0. Once a rollout
is over (rolled back or promoted), ``start`` begins a new one and ``promote`` promotes weights
set by hand since (``promote_anew``), both from the settings passed in.

Each cell names the handler of ``TRANSITIONS`` (without its underscore); an empty cell is an
illegal move:

    event \ state  idle      ramping   paused    awaiting_promotion  rolled_back   promoted
    start          start                                             start         start
    tick           stay      tick      watch     watch               stay          stay
    pause                    pause
    resume                             resume
    rollback       rollback  rollback  rollback  rollback            rollback      rollback
    promote        promote   promote   promote   promote             promote_anew  promote_anew

A missing pair raises ``RolloutError``. ``apply`` reads no clock and does no I/O: the caller
passes ``now`` (wall-clock seconds, since the rollout is persisted and its step timer must
survive a restart) and carries out the ``Transition``: first set the candidate's weight when
``candidate_weight`` is not None, then, when ``promote`` is set, swap the roles, so that the
promoted release is stable at 100% and the old one is the candidate at 0%. A rollback the
rollout decided on its own names its ``breach`` (the rollbacks metric's reason).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from itertools import pairwise
from typing import Any, Final, Literal, NamedTuple

import msgspec

from proxy.core.verdict import Breach, Thresholds, Verdict, judge
from proxy.core.window import WindowStats
from proxy.errors import InvalidInput, RolloutError
from proxy.schema import RolloutConfig

State = Literal["idle", "ramping", "paused", "awaiting_promotion", "rolled_back", "promoted"]
IDLE: Final = "idle"
RAMPING: Final = "ramping"
PAUSED: Final = "paused"
AWAITING_PROMOTION: Final = "awaiting_promotion"
ROLLED_BACK: Final = "rolled_back"
PROMOTED: Final = "promoted"
STATES: tuple[State, ...] = (IDLE, RAMPING, PAUSED, AWAITING_PROMOTION, ROLLED_BACK, PROMOTED)
IN_PROGRESS: frozenset[State] = frozenset({RAMPING, PAUSED, AWAITING_PROMOTION})  # candidate live

START, TICK, PAUSE, RESUME, ROLLBACK, PROMOTE = (
    "start", "tick", "pause", "resume", "rollback", "promote"
)  # fmt: skip
EVENTS = (START, TICK, PAUSE, RESUME, ROLLBACK, PROMOTE)

MIN_WINDOW_SECONDS = 5.0  # the shortest window a tick judges (see ``window_seconds``)


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
        """An idle rollout from the config's defaults with ``POST /rollout`` overrides on top;
        an override that is not valid raises ``InvalidInput`` naming it."""
        unknown = sorted(set(overrides) - set(_CHECKS))
        if unknown:
            raise InvalidInput(
                f"rollout.{unknown[0]}: unknown setting (known: {', '.join(_CHECKS)})"
            )
        values = {key: getattr(cfg, key) for key in _CHECKS} | dict(overrides)
        for key, check in _CHECKS.items():
            problem = check(values[key])
            if problem:
                raise InvalidInput(f"rollout.{key}: {values[key]!r} {problem}")
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
def window_seconds(r: Rollout, now: float) -> float:
    """How far back a tick at ``now`` judges: the step so far, but never less than
    ``MIN_WINDOW_SECONDS`` (a window of a fraction of a second would judge the stable release
    on almost nothing) nor more than a step."""
    return min(r.step_seconds, max(MIN_WINDOW_SECONDS, now - r.step_started_at))


# -- transitions --
class Transition(msgspec.Struct, frozen=True, kw_only=True):
    """What an event did: the new rollout, and what the runtime must carry out."""

    rollout: Rollout
    candidate_weight: float | None = None  # None: leave the weights alone
    promote: bool = False  # swap stable and candidate (after applying candidate_weight)
    rolled_back: bool = False
    breach: Breach | None = None  # the rollout rolled back on its own, for this breach
    reason: str | None = None
    log: str = ""  # one human line describing the change; empty when nothing changed


Stats = tuple[WindowStats, WindowStats]  # (candidate, stable) over the same window


class Given(NamedTuple):
    """What an event brings besides the time: see ``apply``."""

    stats: Stats | None
    reason: str | None
    settings: Rollout | None


_Handler = Callable[[Rollout, float, Given], Transition]


def apply(
    rollout: Rollout,
    event: str,
    now: float,
    stats: Stats | None = None,
    reason: str | None = None,
    settings: Rollout | None = None,
) -> Transition:
    """The transition ``event`` causes at time ``now``; raises ``RolloutError`` when illegal.

    ``stats`` (candidate, stable) feed ``tick`` (missing stats count as no data); ``reason``
    is the operator's explanation for ``rollback`` (default "manual"); ``settings`` is the
    idle rollout a new one begins from (the config with the start's overrides), for ``start``
    and for ``promote`` after an ended rollout (default: the rollout's own settings).
    """
    handler = TRANSITIONS.get((rollout.state, event))
    if handler is None:
        raise RolloutError(f"can't handle event {event!r} in state {rollout.state!r}")
    return handler(rollout, now, Given(stats, reason, settings))


def _anew(r: Rollout, given: Given) -> Rollout:
    """The idle rollout a new one begins from: the settings given, or ``r``'s own."""
    if given.settings is not None:
        return given.settings
    return msgspec.structs.replace(r, state=IDLE, step_index=0, step_started_at=0.0, reason=None)


def _start(r: Rollout, now: float, given: Given) -> Transition:
    base = _anew(r, given)
    new = _replace(base, now, state=RAMPING, step_index=0, step_started_at=now, reason=None)
    return Transition(
        rollout=new,
        candidate_weight=new.weight,
        log=f"rollout started: candidate at {new.weight:g}% (step 1 of {len(new.steps)}, "
        f"{new.step_seconds:g} s each)",
    )


def _stay(r: Rollout, now: float, given: Given) -> Transition:
    return Transition(rollout=r)


def _verdict(r: Rollout, given: Given) -> Verdict:
    candidate, stable = given.stats if given.stats is not None else (WindowStats(), WindowStats())
    return judge(candidate, stable, r.thresholds)


def _watch(r: Rollout, now: float, given: Given) -> Transition:
    """Paused or awaiting promotion, the candidate still carries traffic: a breach still rolls
    it back (nobody is watching a rollout left at 100% overnight); nothing else changes."""
    verdict = _verdict(r, given)
    if verdict.outcome == "fail":
        return _roll_back(r, now, verdict.reason, verdict.breach)
    return Transition(rollout=r)


def _tick(r: Rollout, now: float, given: Given) -> Transition:
    verdict = _verdict(r, given)
    if verdict.outcome == "fail":
        return _roll_back(r, now, verdict.reason, verdict.breach)
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


def _pause(r: Rollout, now: float, given: Given) -> Transition:
    return Transition(
        rollout=_replace(r, now, state=PAUSED),
        log=f"rollout paused at {r.weight:g}% (step {r.step_index + 1} of {len(r.steps)})",
    )


def _resume(r: Rollout, now: float, given: Given) -> Transition:
    return Transition(
        rollout=_replace(r, now, state=RAMPING, step_started_at=now),
        log=f"rollout resumed at {r.weight:g}%; step timer restarted",
    )


def _rollback(r: Rollout, now: float, given: Given) -> Transition:
    return _roll_back(r, now, given.reason, None)


def _roll_back(r: Rollout, now: float, reason: str | None, breach: Breach | None) -> Transition:
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
        breach=breach,
        reason=why,
        log=f"rolled back from {r.state}: candidate at 0% ({why})",
    )


def _promote(r: Rollout, now: float, given: Given) -> Transition:
    return Transition(
        rollout=_replace(r, now, state=PROMOTED, reason=None),
        candidate_weight=100.0,
        promote=True,
        log=f"candidate promoted by hand from {r.state}",
    )


def _promote_anew(r: Rollout, now: float, given: Given) -> Transition:
    """The last rollout is over (rolled back, or promoted): weights set by hand since then are
    promoted as from idle, so a release can be promoted by hand again."""
    return Transition(
        rollout=_replace(_anew(r, given), now, state=PROMOTED),
        candidate_weight=100.0,
        promote=True,
        log=f"candidate promoted by hand (the last rollout {r.state.replace('_', ' ')})",
    )


def _replace(r: Rollout, now: float, **changes: Any) -> Rollout:
    return msgspec.structs.replace(r, updated_at=now, **changes)


TRANSITIONS: dict[tuple[State, str], _Handler] = {
    (IDLE, START): _start,
    (ROLLED_BACK, START): _start,
    (PROMOTED, START): _start,
    (IDLE, TICK): _stay,
    (RAMPING, TICK): _tick,
    (PAUSED, TICK): _watch,
    (AWAITING_PROMOTION, TICK): _watch,
    (ROLLED_BACK, TICK): _stay,
    (PROMOTED, TICK): _stay,
    (RAMPING, PAUSE): _pause,
    (PAUSED, RESUME): _resume,
    **{(state, ROLLBACK): _rollback for state in STATES},
    (IDLE, PROMOTE): _promote,
    (RAMPING, PROMOTE): _promote,
    (PAUSED, PROMOTE): _promote,
    (AWAITING_PROMOTION, PROMOTE): _promote,
    (ROLLED_BACK, PROMOTE): _promote_anew,
    (PROMOTED, PROMOTE): _promote_anew,
}

# The states in which a tick may change something: only those need the windows' statistics.
JUDGING: frozenset[State] = frozenset(
    state
    for (state, event), handler in TRANSITIONS.items()
    if event == TICK and handler is not _stay
)
