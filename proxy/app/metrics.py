"""Every Prometheus metric Switchback exposes, each concern's set on one registry passed in.

Release traffic registers its own (``proxy.traffic.metrics``), so does deprecation telemetry
(``proxy.deprecation.metrics``). The data plane imports no feature and no metric: it reports
through the runtime's ``upstream_error`` and ``rejected`` callbacks (``proxy.http.context``),
and its gauges read the listener and the pools at scrape time, so its metrics live here, with
the assembly's own (config reloads).

Label cardinality is bounded: releases are two, ``kind`` and ``reason`` come from fixed sets.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.deprecation.fields import FieldsMetrics
from proxy.deprecation.metrics import DeprecationMetrics
from proxy.fleet.metrics import FleetMetrics
from proxy.journal.metrics import JournalMetrics
from proxy.logs.metrics import LogMetrics
from proxy.metric_tables import CounterTable
from proxy.shadow.metrics import ShadowMetrics
from proxy.traffic.metrics import TrafficMetrics

UPSTREAM_ERROR_KINDS = ("connect", "timeout", "broken", "invalid")
REJECT_REASONS = (
    "malformed",
    "transfer_coding",
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


class DataPlaneMetrics:
    """Failures talking to releases, requests refused, overload, and what is open now."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.upstream_errors = Counter(
            "switchback_upstream_errors",
            "Failures talking to a release: connect, timeout (no head in time, or silent "
            "mid-response), broken (closed mid-exchange), invalid (a malformed or over-long "
            "response, or bytes after a complete one).",
            ["release", "kind"],
            registry=r,
        )
        # Counted on the request path (a refusal under overload is the hottest one): a table.
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
        self.in_flight = Gauge(
            "switchback_in_flight_requests", "Requests being served, by release.",
            ["release"], registry=r,
        )  # fmt: skip
        self.tunnels = Gauge(
            "switchback_websocket_tunnels", "Open WebSocket tunnels, by release.",
            ["release"], registry=r,
        )  # fmt: skip

    def add_release(self, release: str) -> None:
        """The series that count a release's failures exist from the start, at zero, so that
        rate() and increase() see the first failure after a restart."""
        for kind in UPSTREAM_ERROR_KINDS:
            self.upstream_errors.labels(release, kind)


class ReloadMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reloads = Counter(
            "switchback_config_reloads", "Config reloads that took effect.", registry=registry
        )
        self.reload_failures = Counter(
            "switchback_config_reload_failures",
            "Config reloads refused (invalid file, or a refused change); the old config stays.",
            registry=registry,
        )


class Metrics:
    """One registry; each concern's metrics on it, handed to that concern alone."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.traffic = TrafficMetrics(self.registry)
        self.data_plane = DataPlaneMetrics(self.registry)
        self.reloads = ReloadMetrics(self.registry)
        self.deprecation = DeprecationMetrics(self.registry)
        self.shadow = ShadowMetrics(self.registry)
        self.fields = FieldsMetrics(self.registry)
        self.journal = JournalMetrics(self.registry)
        self.logs = LogMetrics(self.registry)
        self.fleet = FleetMetrics(self.registry)
