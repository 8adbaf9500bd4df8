"""What shadow traffic found: the differences seen, by route, JSON path and kind, bounded.

A ``DiffBook`` keeps, for every (route, path, kind) seen, how often, when first and last, and
one example request (the first: credentials already redacted by the caller). Two comparisons
feed it, as Diffy (Twitter's) does:

    candidate    the stable answer against the candidate's   (``record``)
    noise        the stable answer against a second answer of the stable release
                 (``record_noise``): a difference that shows up here is not the candidate's

Which differences count as breaking is decided when the book is read (``proxy.core.
shadowreport``), so a difference later found to be noise stops counting as breaking.

Bounded: at most ``max_routes`` route labels (then ``other``) and ``max_entries`` keys (then
the key is not kept; ``overflow`` counts them). Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from proxy.core.jsondiff import Difference

OTHER = "other"
Key = tuple[str, str, str]  # (route, path, kind)


@dataclass(frozen=True, slots=True)
class Example:
    """One request that showed a difference; ``headers`` are redacted."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    client: str

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "client": self.client,
            "headers": [list(h) for h in self.headers],
        }


@dataclass(slots=True)
class Entry:
    count: int
    first_seen: float
    last_seen: float
    example: Example


@dataclass(slots=True)
class DiffBook:
    max_routes: int = 100
    max_entries: int = 1000
    found: dict[Key, Entry] = field(default_factory=dict)
    noise: dict[Key, Entry] = field(default_factory=dict)
    routes: set[str] = field(default_factory=set)
    compared: int = 0  # candidate comparisons made
    differing: int = 0  # of which showed at least one difference
    noise_compared: int = 0
    overflow: int = 0

    def route(self, label: str) -> str:
        """``label``, or ``other`` once ``max_routes`` labels are in use."""
        if label in self.routes:
            return label
        if len(self.routes) >= self.max_routes:
            return OTHER
        self.routes.add(label)
        return label

    def is_noise(self, route: str, diff: Difference) -> bool:
        return (route, diff.path, diff.kind) in self.noise

    def record(
        self, route: str, diffs: list[Difference], example: Example | None, now: float
    ) -> list[Difference]:
        """Count one candidate comparison; returns the differences not known as noise."""
        self.compared += 1
        if diffs:
            self.differing += 1
        self._add(self.found, route, diffs, example, now)
        return [d for d in diffs if not self.is_noise(route, d)]

    def record_noise(
        self, route: str, diffs: list[Difference], example: Example | None, now: float
    ) -> None:
        self.noise_compared += 1
        self._add(self.noise, route, diffs, example, now)

    def _add(
        self,
        table: dict[Key, Entry],
        route: str,
        diffs: list[Difference],
        example: Example | None,
        now: float,
    ) -> None:
        """``example`` may be None only when there is no difference to keep it for."""
        for d in diffs:
            key = (route, d.path, d.kind)
            entry = table.get(key)
            if entry is not None:
                entry.count += 1
                entry.last_seen = now
            elif example is not None and len(table) < self.max_entries:
                table[key] = Entry(1, now, now, example)
            else:
                self.overflow += 1
