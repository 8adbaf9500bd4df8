"""Every Prometheus metric Switchback exposes, on a registry passed in (never the global one).

Label cardinality is bounded: releases are two, status codes are few, ``kind`` and ``reason``
come from fixed sets, deprecated elements come from config, and clients go through
``proxy.core.labels.ClientLabels`` (known clients plus the first N seen, then ``other``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.metric_tables import CounterTable, GaugeTable, HistogramTable

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip

UPSTREAM_ERROR_KINDS = ("connect", "timeout", "broken", "invalid")
REJECT_REASONS = (
    "malformed",
    "head_size",
    "header_count",
    "target_length",
    "body_size",
    "head_timeout",
    "body_timeout",
    "send_timeout",
    "max_connections",
    "release_in_flight",
    "loop_lag",
)

ROLLOUT_STATES = ("idle", "ramping", "paused", "awaiting_promotion", "rolled_back", "promoted")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        # Updated on every exchange: plain tables rendered at scrape time (metric_tables).
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
        self.upstream_errors = Counter(
            "switchback_upstream_errors",
            "Failures talking to a release: connect, timeout (no head in time, or silent "
            "mid-response), broken (closed mid-exchange), invalid (a malformed or over-long "
            "response, or bytes after a complete one).",
            ["release", "kind"],
            registry=r,
        )
        self.rejected = CounterTable(
            "switchback_rejected",
            "Requests and connections Switchback answered or closed itself, by reason: a "
            "limit, a timeout, overload, or a malformed request.",
            ["reason"],
            r,
        )
        for reason in REJECT_REASONS:
            self.rejected.inc((reason,), 0)
        self.loop_lag = Gauge(
            "switchback_event_loop_lag_seconds",
            "How late the event loop ran its last 100 ms check (load shedding above "
            "limits.max_loop_lag).",
            registry=r,
        )
        self.shedding = Gauge(
            "switchback_shedding",
            "1 while new requests are refused because the event loop is falling behind.",
            registry=r,
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
        self.in_flight = Gauge(
            "switchback_in_flight_requests", "Requests being served, by release.",
            ["release"], registry=r,
        )  # fmt: skip
        self.tunnels = Gauge(
            "switchback_websocket_tunnels", "Open WebSocket tunnels, by release.",
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
        for reason in ("manual", "error_rate", "latency"):
            self.rollbacks.labels(reason)
        self.reloads = Counter(
            "switchback_config_reloads", "Config reloads that took effect.", registry=r
        )
        self.reload_failures = Counter(
            "switchback_config_reload_failures",
            "Config reloads refused (invalid file, or a refused change); the old config stays.",
            registry=r,
        )
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
        # The ledger: every series exists from the start, at 0.
        self.ledger_write_failures = Counter(
            "switchback_ledger_write_failures",
            "Ledger flushes (or openings) that failed; the counts wait in memory for the next.",
            registry=r,
        )
        self.ledger_resets = Counter(
            "switchback_ledger_resets",
            "Corrupt ledger files set aside (renamed .corrupt-<time>) and replaced by a new one.",
            registry=r,
        )
        self.ledger_dropped = Counter(
            "switchback_ledger_dropped",
            "Touches of deprecated elements the ledger could not keep: its unflushed batch was "
            "full while the file could not be written.",
            registry=r,
        )
        self.deprecated = CounterTable(
            "switchback_deprecated",
            "Uses (client sent it) and exposures (client received it) of deprecated elements.",
            ["element", "kind", "client"],
            r,
        )
        self.deprecated_last_seen = GaugeTable(
            "switchback_deprecated_last_seen_timestamp_seconds",
            "When a client last used or was exposed to a deprecated element.",
            ["element", "client"],
            r,
        )
        self.sunset = Gauge(
            "switchback_deprecation_sunset_timestamp_seconds",
            "The configured sunset of each deprecated element (absent when none is set).",
            ["element"],
            registry=r,
        )
        self.deprecated_since = Gauge(
            "switchback_deprecation_timestamp_seconds",
            "The configured deprecation date of each deprecated element.",
            ["element"],
            registry=r,
        )
        self.inspection_skipped = Counter(
            "switchback_inspection_skipped",
            "Bodies not inspected for deprecated fields: not_json, too_large, malformed, encoding.",
            ["reason"],
            registry=r,
        )
        for reason in ("not_json", "too_large", "malformed", "encoding"):
            self.inspection_skipped.labels(reason)
