"""The journal's metrics, on a registry passed in. ``release`` takes the configured release
names only (two), and the series exist from the start at 0, so that rate() sees the first."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter


class JournalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.entries = Counter(
            "switchback_journal_entries",
            "Writes of the candidate written to the journal (committed to its file).",
            ["release"],
            registry=r,
        )
        self.dropped = Counter(
            "switchback_journal_dropped",
            "Writes of the candidate not journaled: the writer's queue was full.",
            registry=r,
        )
        self.write_failures = Counter(
            "switchback_journal_write_failures",
            "Journal batches (or openings of its file) that failed; the batch waits for the next.",
            registry=r,
        )

    def add_releases(self, names: Iterable[str]) -> None:
        for name in names:
            self.entries.labels(name)
