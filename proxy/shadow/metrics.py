"""Shadow traffic's metrics, on a registry passed in (never the global one).

Labels are bounded: ``role``, ``reason`` and ``kind`` come from fixed sets (roles and reasons
exist from the start, at 0), ``route`` from ``proxy.core.shadowbook.DiffBook.route`` (at most
``shadow.max_routes`` values, then ``other``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from proxy.metric_tables import CounterTable

DROP_REASONS = (
    "max_in_flight",  # shadow.max_in_flight copies were in flight already
    "timeout",  # no whole answer within shadow.timeout
    "busy",  # the candidate had limits.max_in_flight requests already
    "connect",  # the connection could not be opened
    "broken",  # the connection closed before the answer ended
    "invalid",  # the answer broke HTTP/1.1 or a limit
    "too_large",  # a body (request, stable or shadow answer) above telemetry.max_body_bytes
    "not_served",  # the stable release's answer did not complete (the client left, an error)
)


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sent = Counter(
            "switchback_shadow_requests",
            "Copies of requests sent: to the candidate (role shadow) or to the stable release "
            "a second time, for noise (role noise).",
            ["role"],
            registry=r,
        )
        self.dropped = Counter(
            "switchback_shadow_dropped",
            "Shadow copies not compared, by reason (" + ", ".join(DROP_REASONS) + ").",
            ["reason"],
            registry=r,
        )
        self.compared = Counter(
            "switchback_shadow_compared",
            "Candidate answers compared with the stable release's.",
            registry=r,
        )
        self.diffs = CounterTable(
            "switchback_shadow_diffs",
            "Differences between the candidate's answer and the stable release's, by route and "
            "kind (noise already known at the time is counted in switchback_shadow_noise).",
            ["route", "kind"],
            r,
        )
        self.noise = CounterTable(
            "switchback_shadow_noise",
            "Differences between two answers of the stable release, by route and kind.",
            ["route", "kind"],
            r,
        )
        self.in_flight = Gauge(
            "switchback_shadow_in_flight", "Shadow copies waiting for an answer.", registry=r
        )
        for role in ("shadow", "noise"):
            self.sent.labels(role)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
