"""A window's totals as values: ``WindowStats`` (what a verdict reads) and ``WindowCounts`` (raw
counts that add up across replicas), the latency buckets, and the p99 read off a histogram.

A module of its own, not compiled: a compiled module loses a Struct's class options
(``proxy.http.native``), and ``proxy.core.window``, whose ``record`` runs on every request,
compiles.
"""

from __future__ import annotations

import msgspec

# Upper bounds (seconds) of the latency buckets: 49 log-spaced bounds, 0.5 ms to 60 s. A duration
# d falls in the first bucket whose bound is >= d; beyond the last bound, an overflow bucket.
_LOW, _HIGH, _NBOUNDS = 0.0005, 60.0, 49
BOUNDS: tuple[float, ...] = tuple(
    _LOW * (_HIGH / _LOW) ** (i / (_NBOUNDS - 1)) for i in range(_NBOUNDS)
)
NBUCKETS = _NBOUNDS + 1  # the last one counts durations above 60 s
ZEROS = [0] * NBUCKETS  # never mutated: copied from, to clear a slot


class WindowStats(msgspec.Struct, frozen=True, kw_only=True):
    """One release's traffic over a window. ``release`` names it in human-readable verdicts."""

    release: str = ""
    requests: int = 0
    errors: int = 0  # responses with a 5xx status
    error_rate: float = 0.0  # errors / requests; 0.0 when there were no requests
    p99_ms: float | None = None  # None when there were no requests
    rate_per_s: float = 0.0


class WindowCounts(msgspec.Struct, frozen=True, kw_only=True):
    """A window's raw totals: 5xx count and the fixed-bucket latency histogram (``BOUNDS``),
    whose sum is the request count. Counts of several replicas over the same window add up
    bucket by bucket (``merge``), so a fleet's p99 is read off the summed histogram."""

    errors: int = 0
    hist: tuple[int, ...] = tuple(ZEROS)
    span_s: int = 1

    @property
    def requests(self) -> int:
        return sum(self.hist)

    def stats(self, release: str) -> WindowStats:
        requests = self.requests
        return WindowStats(
            release=release,
            requests=requests,
            errors=self.errors,
            error_rate=self.errors / requests if requests else 0.0,
            p99_ms=quantile_ms(list(self.hist), 0.99),
            rate_per_s=requests / self.span_s,
        )


def merge(counts: list[WindowCounts]) -> WindowCounts:
    """The sum of several windows' counts (the widest span); empty: no requests."""
    if not counts:
        return WindowCounts()
    hist = [sum(col) for col in zip(*(c.hist for c in counts), strict=True)]
    return WindowCounts(
        errors=sum(c.errors for c in counts),
        hist=tuple(hist),
        span_s=max(c.span_s for c in counts),
    )


def quantile_ms(hist: list[int], q: float) -> float | None:
    """The q-quantile (0 < q <= 1) of a bucket histogram, in milliseconds; None when empty.

    The rank is located in its bucket and interpolated linearly between the bucket's bounds
    (0 below the first). A rank in the overflow bucket reports the last bound, 60 s.
    """
    total = sum(hist)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for b, n in enumerate(hist):
        if n and seen + n >= rank:
            if b == len(BOUNDS):
                return BOUNDS[-1] * 1000.0
            lower = BOUNDS[b - 1] if b else 0.0
            return (lower + (BOUNDS[b] - lower) * (rank - seen) / n) * 1000.0
        seen += n
    return BOUNDS[-1] * 1000.0  # not reached: the loop ends in the bucket holding the rank
