"""Release traffic's metrics, on a registry passed in (never the global one).

What was served (updated on every exchange, so plain tables of ``proxy.metric_tables``), the
split in force, the rollout, and whether that state is saved in ``traffic.json``. Labels are
bounded: two releases, a few status codes, the rollout's fixed states, fixed rollback reasons.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.core.verdict import Breach
from proxy.metric_tables import CounterTable, HistogramTable

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

MANUAL = "manual"  # the rollbacks metric's reason for an operator's rollback
ROLLBACK_REASONS = (MANUAL, *(breach.value for breach in Breach))


class TrafficMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = CounterTable(
            "switchback_requests",
            "Responses sent to clients, by the release that served them and status code.",
            ["release", "code"],
            r,
        )
        self.duration = HistogramTable(
            "switchback_request_duration_seconds",
            "Time from the request head to the end of the response, by release.",
            ["release"],
            LATENCY_BUCKETS,
            r,
        )
        self.weight = Gauge(
            "switchback_traffic_weight",
            "Percentage of clients assigned to each release.",
            ["release"],
            registry=r,
        )
        self.stable = Gauge(
            "switchback_stable_release", "1 for the stable release, 0 for the other.",
            ["release"], registry=r,
        )  # fmt: skip
        self.rollout_state = Gauge(
            "switchback_rollout_state",
            "1 for the rollout's current state, 0 for the others.",
            ["state"],
            registry=r,
        )
        self.rollout_step = Gauge(
            "switchback_rollout_step", "Index of the rollout step in force (-1: none).", registry=r
        )
        self.rollbacks = Counter(
            "switchback_rollbacks", "Rollbacks, by reason (manual, error_rate, latency).",
            ["reason"], registry=r,
        )  # fmt: skip
        for reason in ROLLBACK_REASONS:
            self.rollbacks.labels(reason)
        # traffic.json: both series exist from the start (failures at 0).
        self.state_write_failures = Counter(
            "switchback_state_write_failures",
            "Saves of traffic.json that failed (full or read-only disk); the state stays in force.",
            registry=r,
        )
        self.state_persisted = Gauge(
            "switchback_state_persisted",
            "1 when the traffic state in force is saved in traffic.json, 0 while it is not.",
            registry=r,
        )
