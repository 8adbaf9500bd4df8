"""The log's own metrics, read from the sink at scrape time (the request path counts ints)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class LogMetrics(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self.counts: Callable[[], tuple[int, int, int]] = lambda: (0, 0, 0)
        registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return list(self.collect())

    def collect(self) -> Iterable[Metric]:
        written, dropped, failed = self.counts()
        yield _counter(
            "switchback_log_lines", "Log lines written (access and other lines).", written
        )
        yield _counter(
            "switchback_log_dropped",
            "Log lines dropped because the log's file or pipe did not keep up (the buffer, "
            "logging.buffer lines, was full): the requests were served.",
            dropped,
        )
        yield _counter(
            "switchback_log_write_failures",
            "Log lines lost to an error writing them (e.g. a full disk).",
            failed,
        )


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], float(value))
    return family
