"""One replica's part in a fleet: keep its traffic state in step with the shared one in Redis.

Theory of operation
-------------------
The replica's ``TrafficControl`` stays what serves traffic: the state in force is always a
local value, so nothing on the request path waits on Redis. This class keeps it in step:

- **Changes made here** (an operator's command on this replica's admin API or CLI, a local
  rollback, a step the leader took) come through ``control.on_change``: the replica is marked
  dirty and the sync loop wakes at once and writes the state with compare-and-set.
- **Changes made elsewhere** arrive as a pub/sub notice (the version written), which wakes the
  sync loop; it reads the shared state and adopts it. Polling every ``poll_seconds`` is the
  fallback for a lost notice or a dropped subscription.
- Each sync is ``proxy.core.fleetstate.reconcile``'s decision, carried out. A local change
  made while a sync waits on Redis is never overwritten: the sync starts over.
- **Once a second** (``beat``): a heartbeat into the fleet view, this replica's window counts
  for the leader, and the lease: taken when free, renewed while held. The leader sums the
  fleet's counts; ``decide_tick`` (``proxy.core.fleetstats.fleet_tick``) judges on them.
- **When Redis is away**, every call fails fast (0.5 s timeouts): the replica keeps serving
  the last state it saw (fail static), stops leading (so nothing advances, nothing is
  promoted), still rolls back on a breach in its own window, and reconciles on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import redis

from proxy.core.fleetstate import SharedState, reconcile
from proxy.core.fleetstats import (
    Counts,
    StatsEntry,
    decode_entry,
    encode_entry,
    fleet_stats,
    fleet_tick,
    sum_entries,
)
from proxy.core.redisurl import redacted
from proxy.core.rollout import JUDGING, Rollout, Stats, Transition, window_seconds
from proxy.core.routing import TrafficState
from proxy.core.window import Windows
from proxy.fleet.metrics import FleetMetrics
from proxy.fleet.store import Store
from proxy.fleet.view import Beat, fleet_view
from proxy.schema import CoordinationConfig

log = logging.getLogger("switchback.fleet")

FAILURES = (redis.RedisError, OSError, asyncio.TimeoutError, ValueError)
STATS_MAX_AGE = 3.0  # seconds: older window counts of a replica are left out of the sums
MAX_ATTEMPTS = 5  # compare-and-set attempts per wake-up before waiting for the next one


class Control(Protocol):
    """What the coordinator needs of ``proxy.traffic.control.TrafficControl``."""

    rollout: Rollout
    traffic: TrafficState
    on_change: Callable[[], None] | None
    decide_tick: Callable[[Rollout, float, Stats], Transition] | None

    def shared_view(self, version: int) -> SharedState: ...
    def adopt(self, shared: SharedState) -> str | None: ...


class Coordinator:
    def __init__(
        self,
        cfg: CoordinationConfig,
        replica: str,
        control: Control,
        windows: Windows,
        metrics: FleetMetrics,
        clock: Callable[[], float],
        in_flight: Callable[[], int],
    ) -> None:
        self.cfg = cfg
        self.replica = replica
        self.control = control
        self.windows = windows
        self.metrics = metrics
        self.clock = clock  # the loop's monotonic clock, as the windows use
        self.in_flight = in_flight
        self.store = Store(cfg.redis, cfg.key)
        self.version = 0  # the shared version the state in force is in step with
        self.changes = 0  # local changes so far; dirty while not all are written
        self.written = 0
        self.connected = False
        self.away_logged = False
        self.leading = False
        self.fleet: dict[str, Any] | None = None  # the leader's sums, when fresh
        self.wake = asyncio.Event()
        self.interval = min(1.0, cfg.lease_seconds / 3)
        control.on_change = self._changed
        control.decide_tick = self._decide_tick
        metrics.set_state("disconnected")

    @property
    def dirty(self) -> bool:
        return self.written != self.changes

    # -- hooks called by the traffic control --
    def _changed(self) -> None:
        self.changes += 1
        self.wake.set()

    def _decide_tick(self, r: Rollout, now: float, local: Stats) -> Transition:
        fleet = None
        if self.leading and self.connected and self.fleet is not None:
            if self.fleet["step_started_at"] == r.step_started_at:
                fleet = self.fleet["stats"]
        return fleet_tick(r, now, local, fleet)

    # -- start and stop --
    async def start(self, spawn: Callable[[Any], Any]) -> None:
        """One bounded first sync (a new replica serves the fleet's state from its first
        request when Redis answers), then the loops."""
        log.info("fleet: replica %s, shared state at %s key %s", self.replica,
                 redacted(self.cfg.redis), self.cfg.key)  # fmt: skip
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sync(), 2.0)
        spawn(self._sync_loop())
        spawn(self._notices())
        spawn(self._beats())

    async def stop(self) -> None:
        with contextlib.suppress(*FAILURES):
            if self.leading:
                await asyncio.wait_for(self.store.release_lease(self.replica), 1.0)
            await asyncio.wait_for(self.store.forget(self.replica), 1.0)
        self.leading = False
        with contextlib.suppress(*FAILURES):
            await self.store.close()

    # -- keeping in step --
    async def _sync_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.cfg.poll_seconds)
            self.wake.clear()
            await self.sync()

    async def sync(self) -> None:
        """Reconcile with the shared state until in step, or Redis fails (then: fail static)."""
        try:
            for _ in range(MAX_ATTEMPTS):
                if await self._sync_once():
                    break
        except FAILURES as exc:
            self._lost(exc)
            return
        self._reached()

    async def _sync_once(self) -> bool:
        """One read and its decision carried out; False when it must start over."""
        changes = self.changes
        shared = await self.store.read()
        if self.changes != changes:
            return False  # changed here meanwhile: decide again on the newest local state
        local = self.control.shared_view(self.version)
        action = reconcile(local, self.dirty, shared, time.time(), self.replica)
        if action.do == "keep" or action.state is None:
            return True
        if action.do == "adopt":
            return self._adopt(action.state, action.outcome)
        ok, stored = await self.store.compare_and_set(action.state, action.expect)
        if not ok:
            log.info("fleet: version %d was written meanwhile (expected %d); reading again",
                     stored, action.expect)  # fmt: skip
            return False
        self.version = action.state.version
        self.written = changes
        self.metrics.reconciliations.labels(action.outcome).inc()
        if action.outcome != "written":
            log.warning("fleet: %s: wrote version %d", action.outcome, self.version)
        if action.outcome == "rollback_rewritten":
            # The rollback applied on top of the newer shared state: in force here too.
            self.control.adopt(action.state)
        self.metrics.version.set(self.version)
        return True

    def _adopt(self, state: SharedState, outcome: str) -> bool:
        problem = self.control.adopt(state)
        if problem is not None:
            self.metrics.reconciliations.labels("unusable").inc()
            log.error("fleet: shared state version %d cannot be used here: %s; keeping the "
                      "state in force", state.version, problem)  # fmt: skip
            return True
        if outcome == "stale_refused":
            log.warning("fleet: a change made here while version %d was newer was not written "
                        "(stale); adopted version %d", self.version, state.version)  # fmt: skip
        self.version = state.version
        self.written = self.changes
        self.metrics.version.set(self.version)
        self.metrics.reconciliations.labels(outcome).inc()
        return True

    def _lost(self, exc: BaseException) -> None:
        self.metrics.errors.inc()
        self.leading = False
        self.metrics.leader.set(0)
        if self.connected or not self.away_logged:
            self.away_logged = True
            log.warning("fleet: Redis at %s is away (%s); serving the last state seen "
                        "(version %d), not advancing any rollout", redacted(self.cfg.redis),
                        type(exc).__name__, self.version)  # fmt: skip
        self.connected = False
        self.metrics.set_state("disconnected")

    def _reached(self) -> None:
        if not self.connected:
            log.info("fleet: in step with the shared state at version %d", self.version)
        self.connected = True
        self.away_logged = False
        self.metrics.set_state("connected")

    async def _notices(self) -> None:
        """Wake the sync loop on every change notice; resubscribe after a failure."""
        while True:
            pubsub = self.store.pubsub()
            try:
                await pubsub.subscribe(self.store.channel)
                self.wake.set()  # a notice may have been missed while unsubscribed
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self.wake.set()
            except FAILURES:
                pass
            finally:
                with contextlib.suppress(*FAILURES):
                    await pubsub.aclose()
            await asyncio.sleep(self.interval)

    # -- once a second: heartbeat, window counts, lease, the leader's sums --
    async def _beats(self) -> None:
        while True:
            try:
                await self.beat()
            except FAILURES as exc:
                self._lost(exc)
            await asyncio.sleep(self.interval)

    async def beat(self) -> None:
        now = time.time()
        r = self.control.rollout
        traffic = self.control.traffic
        window = window_seconds(r, now)
        mono = self.clock()
        releases = {name: Counts.of(self.windows.counts(name, mono, window))
                    for name in (traffic.candidate, traffic.stable)}  # fmt: skip
        entry = StatsEntry(replica=self.replica, at=now, step_started_at=r.step_started_at,
                           releases=releases)  # fmt: skip
        lease_ms = int(self.cfg.lease_seconds * 1000)
        self.leading = await self.store.hold_lease(self.replica, lease_ms, self.leading)
        self.metrics.leader.set(1 if self.leading else 0)
        await self.store.publish_beat(self.replica, self._beat(now).encode(), encode_entry(entry))
        if self.leading and r.state in JUDGING:
            found = [e for raw in await self.store.all_stats() if (e := decode_entry(raw))]
            sums, used = sum_entries(found, now, STATS_MAX_AGE, r.step_started_at)
            stats = fleet_stats(sums, traffic.candidate, traffic.stable)
            self.fleet = {"step_started_at": r.step_started_at, "stats": stats, "replicas": used}
        else:
            self.fleet = None
        beats = await self.store.all_beats()
        self.metrics.replicas.set(len(fleet_view(beats, now, self.replica)["replicas"]))
        if not self.connected:
            self.wake.set()  # Redis answers again: reconcile now

    def _beat(self, now: float) -> Beat:
        t = self.control.traffic
        return Beat(replica=self.replica, at=now, version=self.version, weights=dict(t.weights),
                    stable=t.stable, rollout_state=self.control.rollout.state,
                    in_flight=self.in_flight(), leader=self.leading,
                    connected=self.connected, dirty=self.dirty)  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """This replica's link, for ``GET /status``."""
        return {"replica": self.replica, "key": self.cfg.key, "connected": self.connected,
                "leader": self.leading, "version": self.version, "dirty": self.dirty}  # fmt: skip

    async def view(self) -> dict[str, Any]:
        """The fleet as Redis holds it: every replica seen in the last minute."""
        now = time.time()
        here = self._beat(now)
        try:
            beats = await asyncio.wait_for(self.store.all_beats(), 2.0)
            leader = await asyncio.wait_for(self.store.leader(), 2.0)
        except FAILURES as exc:
            self._lost(exc)
            beats, leader = {self.replica: here.encode()}, None
        beats[self.replica] = here.encode()  # this replica as it is now
        answer = fleet_view(beats, now, self.replica)
        fleet = self.fleet
        return {
            **answer,
            "key": self.cfg.key,
            "redis": redacted(self.cfg.redis),
            "connected": self.connected,
            "leader": leader,
            "summed_replicas": fleet["replicas"] if fleet else [],
        }
