"""Deprecation telemetry's metrics, on a registry passed in (never the global one).

Per-client counts and last-seen times are updated on every exchange that touches a deprecated
element, so they are plain tables of ``proxy.metric_tables``. Elements come from the config,
clients go through ``proxy.core.labels.ClientLabels`` (known clients plus the first N seen,
then ``other``), skip reasons from a fixed set: cardinality is bounded. The ledger's health
series and the skip reasons exist from the start, at 0, so that rate() sees the first one.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.metric_tables import CounterTable, GaugeTable

SKIP_REASONS = ("not_json", "too_large", "malformed", "encoding")


class DeprecationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
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
        self.spool_rows = Gauge(
            "switchback_ledger_spool_rows",
            "Usage rows in the fleet ledger's local spool, not yet delivered to PostgreSQL.",
            registry=r,
        )
        self.spool_merged = Counter(
            "switchback_ledger_spool_merged",
            "Spool rows folded into others (totals kept exact) to stay within spool_max_rows.",
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
        for reason in SKIP_REASONS:
            self.inspection_skipped.labels(reason)
        self.refused = CounterTable(
            "switchback_deprecated_refused",
            "Requests refused (410, 400) and response fields removed because a deprecated "
            "element is enforced: reason sunset or brownout (proxy.deprecation.enforce).",
            ["element", "client", "reason"],
            r,
        )
