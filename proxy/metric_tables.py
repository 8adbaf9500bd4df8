"""Per-request metrics as plain tables, turned into Prometheus families only when scraped.

prometheus-client's ``Counter.inc`` and ``Histogram.observe`` take a lock and check the metric
on every call, and ``observe`` walks the bucket list: a few microseconds per request, several
times per request. The metrics updated on every exchange instead live in dicts keyed by their
label values (the event loop is the only writer, so no lock is needed; a scrape runs on the same
loop), and a collector registered on the registry renders them in the usual exposition format.
Label values may be any objects; they are rendered with ``str()`` at scrape time only.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Hashable, Iterable, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

Key = tuple[Hashable, ...]


class _Table(Collector):
    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        registry.register(self)

    def _family(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> Iterable[Metric]:
        return [self._family()]


class CounterTable(_Table):
    """A counter: ``inc(key)`` where ``key`` holds one value per label name."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.values: dict[Key, float] = {}
        super().__init__(name, documentation, labelnames, registry)

    def inc(self, key: Key, amount: float = 1.0) -> None:
        values = self.values
        values[key] = values.get(key, 0.0) + amount

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for key, value in list(self.values.items()):
            family.add_metric([str(v) for v in key], value)
        return [family]


class GaugeTable(_Table):
    """A gauge: ``set(key, value)``; ``forget(key)`` removes a series."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self.values: dict[Key, float] = {}
        super().__init__(name, documentation, labelnames, registry)

    def set(self, key: Key, value: float) -> None:
        self.values[key] = value

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for key, value in list(self.values.items()):
            family.add_metric([str(v) for v in key], value)
        return [family]


class HistogramTable(_Table):
    """A histogram with fixed upper bounds (``le``): ``observe(key, value)`` is one bisect."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.bounds = sorted(float(b) for b in buckets if b != float("inf"))
        # Per series: a count per bucket (the last one is +Inf), then the sum of observations.
        self.series: dict[Key, list[float]] = {}
        super().__init__(name, documentation, labelnames, registry)

    def observe(self, key: Key, value: float) -> None:
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0.0] * (len(self.bounds) + 2)
        row[bisect_left(self.bounds, value)] += 1
        row[-1] += value

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        names = [_format_bound(b) for b in self.bounds] + ["+Inf"]
        for key, row in list(self.series.items()):
            cumulative = 0.0
            buckets = []
            for name, count in zip(names, row[:-1], strict=True):
                cumulative += count
                buckets.append((name, cumulative))
            family.add_metric([str(v) for v in key], buckets, row[-1])
        return [family]


def _format_bound(bound: float) -> str:
    return repr(float(bound))
