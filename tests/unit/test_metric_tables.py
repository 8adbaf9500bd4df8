"""The plain metric tables must expose exactly what prometheus-client's own metrics would."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from proxy.metric_tables import CounterTable, GaugeTable, HistogramTable

BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)
OBS = st.lists(
    st.tuples(st.sampled_from(["blue", "green"]), st.floats(0, 100, allow_nan=False)),
    max_size=40,
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


@given(OBS)
def test_histogram_table_matches_prometheus_client(observations: list[tuple[str, float]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    table = HistogramTable("t_seconds", "doc", ["release"], BUCKETS, ours)
    reference = Histogram("t_seconds", "doc", ["release"], buckets=BUCKETS, registry=theirs)
    for release, value in observations:
        table.observe((release,), value)
        reference.labels(release).observe(value)
    assert samples(ours) == samples(theirs)


@given(st.lists(st.tuples(st.sampled_from(["blue", "green"]), st.sampled_from([200, 503]))))
def test_counter_table_matches_prometheus_client(events: list[tuple[str, int]]) -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    table = CounterTable("t_requests", "doc", ["release", "code"], ours)
    reference = Counter("t_requests", "doc", ["release", "code"], registry=theirs)
    for release, code in events:
        table.inc((release, code))
        reference.labels(release, str(code)).inc()
    assert samples(ours) == samples(theirs)


def test_gauge_table_keeps_the_last_value() -> None:
    registry = CollectorRegistry()
    table = GaugeTable("t_last_seen", "doc", ["element", "client"], registry)
    table.set(("user-role", "web"), 10.0)
    table.set(("user-role", "web"), 20.0)
    assert samples(registry) == {
        ("t_last_seen", frozenset({("element", "user-role"), ("client", "web")})): 20.0
    }
