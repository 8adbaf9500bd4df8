"""The fleet's metrics, on a registry passed in; registered by every Switchback, so that a
standalone one says ``switchback_coordination_state{state="standalone"} 1``.

``switchback_state_version`` is the shared version a replica's state in force was last in step
with: replicas of one fleet that disagree for long are the alert
``SwitchbackReplicasDisagree`` (config/prometheus-rules.yaml).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

STATES = ("standalone", "connected", "disconnected")
OUTCOMES = ("adopted", "written", "seeded", "rollback_rewritten", "stale_refused", "unusable")


class FleetMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.state = Gauge(
            "switchback_coordination_state",
            "1 for the replica's link to the fleet's shared state: standalone (no coordination "
            "configured), connected, or disconnected (serving the last state seen: fail static).",
            ["state"],
            registry=r,
        )
        self.version = Gauge(
            "switchback_state_version",
            "The shared traffic state's version this replica's state in force is in step with.",
            registry=r,
        )
        self.leader = Gauge(
            "switchback_coordination_leader",
            "1 while this replica holds the fleet's leader lease (drives the rollout).",
            registry=r,
        )
        self.replicas = Gauge(
            "switchback_fleet_replicas",
            "Replicas of the fleet seen in the last minute (heartbeats), as this one reads them.",
            registry=r,
        )
        self.reconciliations = Counter(
            "switchback_coordination_reconciliations",
            "Reconciliations with the shared state, by outcome: adopted, written, seeded, "
            "rollback_rewritten (a local rollback written over a newer state), stale_refused "
            "(a local change older than the shared state, not written), unusable.",
            ["outcome"],
            registry=r,
        )
        self.errors = Counter(
            "switchback_coordination_errors",
            "Calls to Redis that failed (unreachable, timed out, refused).",
            registry=r,
        )
        for outcome in OUTCOMES:
            self.reconciliations.labels(outcome)
        self.set_state("standalone")

    def set_state(self, state: str) -> None:
        for name in STATES:
            self.state.labels(name).set(1 if name == state else 0)
