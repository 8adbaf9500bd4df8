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

from proxy.core.window_counts import (
    BOUNDS,
    NBUCKETS,
    ZEROS,
    WindowCounts,
    WindowStats,
    merge,
    quantile_ms,
)

__all__ = [
    "BOUNDS",
    "DEFAULT_MAX_WINDOW_S",
    "NBUCKETS",
    "ReleaseWindow",
    "WindowCounts",
    "WindowStats",
    "Windows",
    "merge",
    "quantile_ms",
]

_NEVER = -(1 << 62)  # the second of a slot that holds nothing: in no window, older than any

DEFAULT_MAX_WINDOW_S = 600.0


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
        self._hist[base : base + NBUCKETS] = ZEROS
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
        hist = ZEROS
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
