"""Traffic control: the split in force, the rollout, and their persistence.

Every change (weights, rollback, promotion, a rollout step) builds a new ``TrafficState`` and
swaps it in with one assignment, so the very next request sees it; the new state is then
written to the state directory (atomically, fsync'ed) before the call returns, so a restart
never undoes a rollback. The rollout's decisions come from the pure ``proxy.core.rollout.apply``;
this class only feeds it statistics and carries out what it decides.

A save that fails (a full or read-only disk) never undoes or refuses the change: it is in
force in memory, the failure is logged and counted, ``summary()`` says ``persisted: false``
with the error, and ``retry_persist`` (called by the runtime's ticker) writes the state in
force once the disk takes it again. A saved state that cannot be used stops start-up
(``StateError``); only an operator sets it aside.

In a fleet (``proxy.fleet``), ``on_change`` hears of every change made here, ``decide_tick``
decides the rollout's ticks (on the fleet's figures), and ``adopt`` puts in force a state
another replica wrote. Standalone, all three stay unused.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from proxy.config.load import initial_traffic
from proxy.core.fleetstate import SharedState
from proxy.core.rollout import (
    IN_PROGRESS,
    JUDGING,
    PAUSE,
    PROMOTE,
    RAMPING,
    RESUME,
    ROLLBACK,
    START,
    STATES,
    TICK,
    Rollout,
    Stats,
    Transition,
    apply,
    window_seconds,
)
from proxy.core.routing import TrafficState
from proxy.core.window import Windows
from proxy.errors import InvalidInput, RolloutError, StateError
from proxy.schema import Config
from proxy.traffic.metrics import MANUAL, TrafficMetrics
from proxy.traffic.state import (
    PersistedState,
    Source,
    check_state,
    follows_config,
    load_state,
    remove_temp_files,
    save_state,
    state_path,
)

log = logging.getLogger("switchback.control")

RETRY_SECONDS = 1.0  # between two attempts to save a state a failed save left unsaved
LOG_EVERY = 60.0  # while saves keep failing, one log line per this many seconds


class TrafficControl:
    def __init__(
        self,
        config: Config,
        metrics: TrafficMetrics,
        windows: Windows,
        clock: Callable[[], float],
        on_rollback: Callable[[str], None],
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.windows = windows
        self.clock = clock  # the loop's monotonic clock, for the sliding windows
        self.on_rollback = on_rollback  # called with the release taken out of service
        self.traffic = initial_traffic(config)
        self.rollout = Rollout.from_config(config.rollout, {})
        self.source: Source = "config"
        self.persist_error: str | None = None  # why the state in force is not on disk
        self._failed_saves = 0  # since the last save that succeeded
        self._retry_at = 0.0
        self._logged_at = -LOG_EVERY
        # A fleet (proxy.fleet) sets these: told of every change made here, and deciding ticks.
        self.on_change: Callable[[], None] | None = None
        self.decide_tick: Callable[[Rollout, float, Stats], Transition] | None = None

    # -- start-up and reload --
    def restore(self) -> None:
        """Take weights, stable release and rollout from the state directory when present.

        A saved state that cannot be used raises ``StateError``: never the config file's split
        instead, which could undo a rollback."""
        state_dir = self.config.state_dir
        for leftover in remove_temp_files(state_dir):
            log.info("removed %s, left by a save that was interrupted", leftover)
        saved = load_state(state_dir)
        if saved is None:
            self.persist()
            return
        if follows_config(saved):
            # Nobody changed the split since it was taken from the file: the file (perhaps
            # edited while Switchback was stopped) is still where it comes from.
            self.persist()
            return
        problem = check_state(saved, self.config.releases)
        if problem is not None:
            raise StateError(state_path(state_dir), problem)
        base = initial_traffic(self.config)
        self.traffic = msgspec.structs.replace(
            base,
            stable=saved.stable,
            candidate=saved.candidate,
            weights=dict(saved.weights),
            out_of_service=saved.out_of_service,
        )
        if saved.rollout is not None:
            self.rollout = saved.rollout
        self.source = "state"
        log.info("restored traffic from %s: %s, rollout %s", self.config.state_dir,
                 _fmt_weights(self.traffic.weights), self.rollout.state)  # fmt: skip
        self.metrics.state_persisted.set(1)  # what is in force is what is on disk
        self.publish()

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: pins and override header always follow the file; the split
        (stable release and weights) follows it only when the file's split changed, so that
        editing anything else never undoes a rollback or another admin change."""
        old = self.config
        split_changed = _split(config) != _split(old)
        if split_changed and self.rollout.state in IN_PROGRESS:
            # Refused before anything changes: the file's split must still count as new at the
            # next reload, once the rollout is over.
            raise RolloutError(
                f"{config.source}: traffic: the file changes the split while a rollout is "
                f"{self.rollout.state}; roll back or promote first"
            )
        self.config = config
        base = initial_traffic(config)
        if split_changed:
            self.traffic = _in_service(base, self.traffic.out_of_service)
            self.source = "config"
        else:
            self.traffic = msgspec.structs.replace(
                base,
                stable=self.traffic.stable,
                candidate=self.traffic.candidate,
                weights=self.traffic.weights,
                out_of_service=self.traffic.out_of_service,
            )
        self.persist()

    # -- admin actions --
    def set_weights(self, weights: Mapping[str, float]) -> dict[str, Any]:
        clean = check_weights(weights, self.traffic)  # bad input first: it never works
        if self.rollout.state == RAMPING:
            raise RolloutError("a rollout is ramping: pause it or roll back before setting weights")
        self._swap(self.traffic.with_weights(clean))
        log.info("weights set to %s", _fmt_weights(clean), extra=_event("weights", clean))
        return self.summary()

    def rollback(self, reason: str = "manual") -> dict[str, Any]:
        """Everything to the stable release now (also when it was rolled back already)."""
        self._carry_out(apply(self.rollout, ROLLBACK, time.time(), reason=reason))
        return self.summary()

    def promote(self) -> dict[str, Any]:
        if self.traffic.weights.get(self.traffic.candidate, 0.0) <= 0.0:
            raise RolloutError(
                f"{self.traffic.candidate} carries no traffic: nothing to promote "
                "(set weights or start a rollout first)"
            )
        fresh = Rollout.from_config(self.config.rollout, {})  # once the last rollout is over
        self._carry_out(apply(self.rollout, PROMOTE, time.time(), settings=fresh))
        return self.summary()

    def start_rollout(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        fresh = Rollout.from_config(self.config.rollout, overrides)
        tr = apply(self.rollout, START, time.time(), settings=fresh)
        self.windows.reset(self.traffic.candidate)  # the new deployment is judged on its own
        self._carry_out(tr)
        return self.summary()

    def pause(self) -> dict[str, Any]:
        self._carry_out(apply(self.rollout, PAUSE, time.time()))
        return self.summary()

    def resume(self) -> dict[str, Any]:
        self._carry_out(apply(self.rollout, RESUME, time.time()))
        return self.summary()

    def tick(self) -> None:
        """Called about once a second: feeds the rollout both releases' statistics over the
        window it judges; what a tick does in each state is the rollout table's call (in the
        states where the table does nothing on a tick, no statistics are gathered)."""
        if self.rollout.state not in JUDGING:
            return
        now_wall = time.time()
        now = self.clock()
        window = window_seconds(self.rollout, now_wall)
        stats = (
            self.windows.snapshot(self.traffic.candidate, now, window),
            self.windows.snapshot(self.traffic.stable, now, window),
        )
        if self.decide_tick is not None:
            tr = self.decide_tick(self.rollout, now_wall, stats)
        else:
            tr = apply(self.rollout, TICK, now_wall, stats)
        if tr.rollout != self.rollout:
            self._carry_out(tr)

    # -- carrying out decisions --
    def _carry_out(self, tr: Transition) -> None:
        traffic = self.traffic
        was = self.rollout.state
        self.rollout = tr.rollout
        if tr.promote:
            new_stable = traffic.candidate
            traffic = msgspec.structs.replace(
                traffic,
                stable=new_stable,
                candidate=traffic.stable,
                weights={new_stable: 100.0, traffic.stable: 0.0},
                out_of_service=None,
            )
        elif tr.candidate_weight is not None:
            w = float(tr.candidate_weight)
            traffic = traffic.with_weights({traffic.candidate: w, traffic.stable: 100.0 - w})
        if tr.log:
            log.info("rollout: %s", tr.log, extra=_transition_event(tr, traffic))
        if tr.rolled_back:
            # Out of production for every client: pins and the override header included.
            traffic = msgspec.structs.replace(traffic, out_of_service=traffic.candidate)
            # Rolling back again when nothing is left to take away is not another rollback.
            if was != "rolled_back" or self.traffic.carries_traffic(self.traffic.candidate):
                reason = tr.breach.value if tr.breach is not None else MANUAL
                self.metrics.rollbacks.labels(reason).inc()
            self.on_rollback(self.traffic.candidate)
        self._swap(traffic)

    def _swap(self, traffic: TrafficState) -> None:
        """A split set by an operator or a rollout: in force now, saved, and from then on the
        state (not the file) is where the split comes from."""
        self.traffic = _in_service(traffic, traffic.out_of_service)
        self.source = "state"
        self.persist()
        if self.on_change is not None:
            self.on_change()

    # -- a fleet's shared state --
    def shared_view(self, version: int) -> SharedState:
        """The state in force, as the fleet shares it, last in step with ``version``."""
        t = self.traffic
        return SharedState(version=version, stable=t.stable, candidate=t.candidate,
                           weights=dict(t.weights), rollout=self.rollout,
                           out_of_service=t.out_of_service)  # fmt: skip

    def adopt(self, shared: SharedState) -> str | None:
        """Put the fleet's state in force (written by another replica); saved like any change,
        never reported back through ``on_change``. Returns why it cannot be used, or None."""
        candidate = PersistedState(stable=shared.stable, candidate=shared.candidate,
                                   weights=dict(shared.weights), rollout=shared.rollout,
                                   saved_at=0.0, out_of_service=shared.out_of_service)  # fmt: skip
        problem = check_state(candidate, self.config.releases)
        if problem is not None:
            return problem
        was_state, was_out = self.rollout.state, self.traffic.out_of_service
        self.rollout = shared.rollout
        traffic = msgspec.structs.replace(
            self.traffic, stable=shared.stable, candidate=shared.candidate,
            weights=dict(shared.weights), out_of_service=shared.out_of_service,
        )  # fmt: skip
        self.traffic = _in_service(traffic, shared.out_of_service)
        self.source = "state"
        if shared.rollout.state == RAMPING and was_state not in IN_PROGRESS:
            self.windows.reset(shared.candidate)  # a new rollout judges the new deployment
        if shared.out_of_service is not None and shared.out_of_service != was_out:
            self.on_rollback(shared.out_of_service)
        self.persist()
        return None

    def persist(self) -> None:
        """Save the state in force. A failure is logged, counted and retried, never raised:
        the change is in force whether or not the disk takes it."""
        state = PersistedState(
            version=1,
            stable=self.traffic.stable,
            candidate=self.traffic.candidate,
            weights=dict(self.traffic.weights),
            rollout=self.rollout,
            saved_at=time.time(),
            source=self.source,
            out_of_service=self.traffic.out_of_service,
        )
        self.publish()
        try:
            save_state(self.config.state_dir, state)
        except OSError as exc:
            self._save_failed(exc)
            return
        if self.persist_error is not None:
            log.warning("traffic state saved to %s again, after %d failed attempt(s)",
                        state_path(self.config.state_dir), self._failed_saves)  # fmt: skip
        self.persist_error = None
        self._failed_saves = 0
        self.metrics.state_persisted.set(1)

    def _save_failed(self, exc: OSError) -> None:
        self.persist_error = f"{exc.strerror or exc} ({type(exc).__name__})"
        self._failed_saves += 1
        now = self.clock()
        self._retry_at = now + RETRY_SECONDS
        self.metrics.state_write_failures.inc()
        self.metrics.state_persisted.set(0)
        if self._failed_saves == 1 or now - self._logged_at >= LOG_EVERY:
            self._logged_at = now
            log.error("cannot save the traffic state to %s: %s; the state in force is %s, "
                      "rollout %s, but a restart would not see it (attempt %d; retrying "
                      "every %g s)", state_path(self.config.state_dir), self.persist_error,
                      _fmt_weights(self.traffic.weights), self.rollout.state,
                      self._failed_saves, RETRY_SECONDS)  # fmt: skip

    def retry_persist(self) -> None:
        """Save again if the last save failed and the retry interval has passed."""
        if self.persist_error is not None and self.clock() >= self._retry_at:
            self.persist()

    def publish(self) -> None:
        m = self.metrics
        for release, weight in self.traffic.weights.items():
            m.weight.labels(release).set(weight)
            m.stable.labels(release).set(1 if release == self.traffic.stable else 0)
        for state in STATES:
            m.rollout_state.labels(state).set(1 if state == self.rollout.state else 0)
        active = self.rollout.state in IN_PROGRESS
        m.rollout_step.set(self.rollout.step_index if active else -1)

    def summary(self) -> dict[str, Any]:
        r = self.rollout
        return {
            "stable": self.traffic.stable,
            "candidate": self.traffic.candidate,
            "weights": dict(self.traffic.weights),
            "source": self.source,
            "rollout": {
                "state": r.state,
                "step": r.step_index,
                "steps": list(r.steps),
                "candidate_weight": self.traffic.weights.get(self.traffic.candidate, 0.0),
                "step_seconds": r.step_seconds,
                "reason": r.reason,
            },
            "out_of_service": self.traffic.out_of_service,
            # False while the state in force is not on disk (a restart would not see it).
            "persisted": self.persist_error is None,
            "persist_error": self.persist_error,
            "state_file": state_path(self.config.state_dir),
        }


def check_weights(weights: Mapping[str, Any], traffic: TrafficState) -> dict[str, float]:
    """Validate an admin weight change; one release given means the other gets the rest.
    A value that can never be right is ``InvalidInput`` (400), not an illegal move."""
    releases = (traffic.stable, traffic.candidate)
    if not isinstance(weights, Mapping) or not weights:
        raise InvalidInput('weights: expected an object such as {"blue": 75, "green": 25}')
    clean: dict[str, float] = {}
    for name, value in weights.items():
        if name not in releases:
            raise InvalidInput(f"weights.{name}: unknown release (known: {', '.join(releases)})")
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise InvalidInput(f"weights.{name}: {value!r} is not a number")
        if not 0 <= value <= 100:
            raise InvalidInput(f"weights.{name}: {value} is not a percentage (0-100)")
        if round(value, 2) != value:
            raise InvalidInput(f"weights.{name}: {value} has more than two decimals")
        clean[name] = float(value)
    if len(clean) == 1:
        ((name, value),) = clean.items()
        other = releases[1] if name == releases[0] else releases[0]
        clean[other] = round(100.0 - value, 2)
    if abs(sum(clean.values()) - 100.0) > 1e-6:
        raise InvalidInput(f"weights: {_fmt_weights(clean)} do not sum to 100")
    return clean


def _split(config: Config) -> tuple[str, dict[str, float]]:
    """What of the config's traffic section a reload may change only between rollouts."""
    return config.traffic.stable, config.traffic.weights


def _in_service(traffic: TrafficState, out: str | None) -> TrafficState:
    """``traffic`` with ``out`` kept out of service, unless its weight brings it back."""
    if out is not None and traffic.carries_traffic(out):
        out = None
    if out == traffic.out_of_service:
        return traffic
    return msgspec.structs.replace(traffic, out_of_service=out)


def _event(name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``extra=`` of a structured log event (``proxy.logs`` formats it)."""
    return {"event": name, "fields": dict(fields)}


def _transition_event(tr: Transition, traffic: TrafficState) -> dict[str, Any]:
    name = "rollback" if tr.rolled_back else "promotion" if tr.promote else "rollout_step"
    fields = {
        "state": tr.rollout.state,
        "step": tr.rollout.step_index + 1,
        "candidate": traffic.candidate,
        "weight": traffic.weights.get(traffic.candidate, 0.0),
        "breach": tr.breach.value if tr.breach is not None else None,
        "reason": tr.reason,
    }
    return _event(name, fields)


def _fmt_weights(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:g}%" for k, v in weights.items())
