"""Per-release sliding-window statistics: request count, 5xx count and latency percentiles.

``record`` runs once per finished exchange, on the hot path, so it does O(1) work and builds no
containers: a ring of one-second slots kept in flat, preallocated lists (per slot, a 5xx count
and a fixed latency histogram, whose sum is the request count). A slot is cleared when the
clock comes round to it again, a ring's length later, so nothing runs "in the background".

``snapshot`` (a few times a second at most: rollout ticks, the admin status) sums the slots of
the last ``window_s`` seconds. The p99 is read off the summed histogram and interpolated
linearly inside its bucket, as Prometheus' ``histogram_quantile`` does; the bucket bounds grow by
about 28% each, so that is also the worst-case relative error.

Times are non-negative seconds on a clock that does not go backwards (the event loop's
monotonic clock); ``record`` and ``snapshot`` must be given the same one.
"""

from __future__ import annotations

import math
from bisect import bisect_left

import msgspec

# Upper bounds (seconds) of the latency buckets: 49 log-spaced bounds, 0.5 ms to 60 s. A duration
# d falls in the first bucket whose bound is >= d; beyond the last bound, an overflow bucket.
_LOW, _HIGH, _NBOUNDS = 0.0005, 60.0, 49
BOUNDS: tuple[float, ...] = tuple(
    _LOW * (_HIGH / _LOW) ** (i / (_NBOUNDS - 1)) for i in range(_NBOUNDS)
)
NBUCKETS = _NBOUNDS + 1  # the last one counts durations above 60 s
_ZEROS = [0] * NBUCKETS  # never mutated: copied from, to clear a slot
_NEVER = -(1 << 62)  # the second of a slot that holds nothing: in no window, older than any

DEFAULT_MAX_WINDOW_S = 600.0


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
    hist: tuple[int, ...] = tuple(_ZEROS)
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


class ReleaseWindow:
    """A ring of one-second slots covering at most ``max_window_s`` seconds."""

    __slots__ = ("release", "_nslots", "_second", "_errors", "_hist")

    def __init__(self, release: str = "", max_window_s: float = DEFAULT_MAX_WINDOW_S) -> None:
        if not max_window_s >= 1:
            raise ValueError(f"max_window_s must be at least 1 second, not {max_window_s!r}")
        self.release = release
        self._nslots = n = math.ceil(max_window_s)
        self._second = [_NEVER] * n  # the whole second (int(now)) each slot holds
        self._errors = [0] * n
        # Slot i's histogram is _hist[i*NBUCKETS : (i+1)*NBUCKETS]; its sum is the slot's count.
        self._hist = [0] * (n * NBUCKETS)

    def record(self, status: int, duration_s: float, now: float) -> None:
        """Count one finished exchange: its status, how long it took and when it ended."""
        sec = int(now)
        i = sec % self._nslots
        if self._second[i] != sec and not self._claim(i, sec):
            return
        if status >= 500:
            self._errors[i] += 1
        self._hist[i * NBUCKETS + bisect_left(BOUNDS, duration_s)] += 1

    def _claim(self, i: int, sec: int) -> bool:
        """Clear slot i for second ``sec``; False when ``sec`` is older than what it holds."""
        if sec < self._second[i]:
            return False
        self._second[i] = sec
        self._errors[i] = 0
        base = i * NBUCKETS
        self._hist[base : base + NBUCKETS] = _ZEROS
        return True

    def snapshot(self, now: float, window_s: float) -> WindowStats:
        """Totals over the whole seconds ``(now - window_s, now]``, the current one included.

        ``window_s`` is rounded up to whole seconds and capped at the ring's size; ``rate_per_s``
        is the request count divided by that many seconds.
        """
        return self.counts(now, window_s).stats(self.release)

    def counts(self, now: float, window_s: float) -> WindowCounts:
        """What ``snapshot`` sums, in a form that adds up across replicas (``merge``)."""
        span = min(self._nslots, max(1, math.ceil(window_s)))
        newest = int(now)
        oldest = newest - span + 1
        errors = 0
        hist = _ZEROS
        for i, sec in enumerate(self._second):
            if oldest <= sec <= newest:
                errors += self._errors[i]
                base = i * NBUCKETS
                hist = [
                    a + b for a, b in zip(hist, self._hist[base : base + NBUCKETS], strict=True)
                ]
        return WindowCounts(errors=errors, hist=tuple(hist), span_s=span)

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._second[:] = [_NEVER] * self._nslots


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


class Windows:
    """One ``ReleaseWindow`` per release name, created on first use."""

    __slots__ = ("max_window_s", "_by_release")

    def __init__(self, max_window_s: float = DEFAULT_MAX_WINDOW_S) -> None:
        self.max_window_s = max_window_s
        self._by_release: dict[str, ReleaseWindow] = {}

    def window(self, release: str) -> ReleaseWindow:
        """The release's window (created when missing); hot paths may keep it and call it."""
        w = self._by_release.get(release)
        if w is None:
            w = self._by_release[release] = ReleaseWindow(release, self.max_window_s)
        return w

    def record(self, release: str, status: int, duration_s: float, now: float) -> None:
        (self._by_release.get(release) or self.window(release)).record(status, duration_s, now)

    def snapshot(self, release: str, now: float, window_s: float) -> WindowStats:
        w = self._by_release.get(release)
        if w is None:
            return WindowStats(release=release)
        return w.snapshot(now, window_s)

    def counts(self, release: str, now: float, window_s: float) -> WindowCounts:
        w = self._by_release.get(release)
        return WindowCounts() if w is None else w.counts(now, window_s)

    def reset(self, release: str) -> None:
        """Forget the release's history, e.g. before a new rollout judges a new deployment."""
        w = self._by_release.get(release)
        if w is not None:
            w.reset()
