"""Sliding-window statistics: counts, 5xx rate, p99 and expiry, against known inputs."""

from __future__ import annotations

from bisect import bisect_left

import pytest

from proxy.core.window import BOUNDS, ReleaseWindow, Windows, WindowStats, quantile_ms

T0 = 10_000.0  # an arbitrary monotonic-clock reading


def bucket_ms(duration_s: float) -> tuple[float, float]:
    """The (lower, upper] bounds, in ms, of the latency bucket holding ``duration_s``."""
    b = bisect_left(BOUNDS, duration_s)
    return (BOUNDS[b - 1] * 1000 if b else 0.0), BOUNDS[b] * 1000


def test_empty_window_has_no_rate_and_no_p99() -> None:
    stats = ReleaseWindow("green").snapshot(T0, 60)
    assert stats == WindowStats(release="green", requests=0, errors=0, error_rate=0.0)
    assert stats.p99_ms is None


def test_error_rate_counts_only_5xx() -> None:
    w = ReleaseWindow()
    statuses = [503] * 30 + [500] * 7 + [404] * 50 + [302] * 13 + [200] * 900
    for n, status in enumerate(statuses):
        w.record(status, 0.010, T0 + n * 0.05)  # 1000 requests over 50 s
    stats = w.snapshot(T0 + 50, 60)
    assert (stats.requests, stats.errors) == (1000, 37)
    assert stats.error_rate == pytest.approx(0.037)
    assert stats.rate_per_s == pytest.approx(1000 / 60)


def test_p99_of_a_single_latency_is_interpolated_in_its_bucket() -> None:
    w = ReleaseWindow()
    for n in range(1000):
        w.record(200, 0.010, T0 + n / 100)
    lower, upper = bucket_ms(0.010)
    p99 = w.snapshot(T0 + 10, 60).p99_ms
    assert p99 == pytest.approx(lower + (upper - lower) * 0.99)
    assert p99 is not None and 10.0 <= p99 <= 10.0 * 1.28  # the buckets are ~28% wide


def test_p99_lands_in_the_slow_tail() -> None:
    # 980 fast requests and 20 slow ones: the 990th request is the 10th of the 20 slow ones.
    w = ReleaseWindow()
    for n in range(1000):
        w.record(200, 0.800 if n % 50 == 0 else 0.010, T0 + n / 100)
    stats = w.snapshot(T0 + 10, 60)
    lower, upper = bucket_ms(0.800)
    assert stats.requests == 1000
    assert stats.p99_ms == pytest.approx(lower + (upper - lower) * 10 / 20)
    assert stats.p99_ms is not None and abs(stats.p99_ms - 800) / 800 < 0.28


def test_p99_of_uniform_latencies_is_close_to_the_true_value() -> None:
    w = ReleaseWindow()
    for ms in range(1, 1001):  # 1 ms .. 1000 ms: the true p99 is 990 ms
        w.record(200, ms / 1000, T0)
    p99 = w.snapshot(T0, 60).p99_ms
    lower, upper = bucket_ms(0.990)
    assert p99 is not None and lower <= p99 <= upper
    assert abs(p99 - 990) / 990 < 0.28


def test_latency_beyond_the_last_bucket_reports_the_cap() -> None:
    w = ReleaseWindow()
    for _ in range(10):
        w.record(504, 120.0, T0)
    assert w.snapshot(T0, 60).p99_ms == pytest.approx(60_000)


def test_quantile_of_an_empty_histogram_is_none() -> None:
    assert quantile_ms([0] * (len(BOUNDS) + 1), 0.99) is None


def test_old_seconds_fall_out_of_the_window() -> None:
    w = ReleaseWindow()
    for _ in range(5):
        w.record(500, 0.010, T0 + 0.2)  # second 10000: bad
    for _ in range(10):
        w.record(200, 0.010, T0 + 30.5)  # second 10030: good
    # Whole seconds (now - window, now]: at T0 + 59.9 second 10000 is still in; at T0 + 60 not.
    assert w.snapshot(T0 + 59.9, 60).requests == 15
    later = w.snapshot(T0 + 60, 60)
    assert (later.requests, later.errors, later.error_rate) == (10, 0, 0.0)
    assert w.snapshot(T0 + 90.0, 60).requests == 0
    assert w.snapshot(T0 + 59.9, 10).requests == 0  # a shorter window sees neither


def test_a_slot_is_cleared_when_the_ring_comes_round() -> None:
    w = ReleaseWindow(max_window_s=10)
    for _ in range(7):
        w.record(500, 2.0, T0)
    w.record(200, 0.001, T0 + 10)  # the same slot, one ring later
    stats = w.snapshot(T0 + 10, 10)
    assert (stats.requests, stats.errors) == (1, 0)
    assert stats.p99_ms is not None and stats.p99_ms <= bucket_ms(0.001)[1]


def test_a_record_older_than_its_slot_is_dropped() -> None:
    w = ReleaseWindow(max_window_s=10)
    w.record(200, 0.010, T0 + 10)
    w.record(500, 0.010, T0)  # same slot, a whole ring older: outside any window
    assert (w.snapshot(T0 + 10, 10).requests, w.snapshot(T0 + 10, 10).errors) == (1, 0)


def test_window_is_capped_at_the_ring_size() -> None:
    w = ReleaseWindow(max_window_s=10)
    for s in range(20):
        w.record(200, 0.010, T0 + s)
    stats = w.snapshot(T0 + 19, 3600)
    assert stats.requests == 10
    assert stats.rate_per_s == pytest.approx(1.0)


def test_windows_keep_releases_apart_and_reset_one() -> None:
    ws = Windows(max_window_s=60)
    for _ in range(3):
        ws.record("green", 500, 0.010, T0)
    ws.record("blue", 200, 0.010, T0)
    assert ws.snapshot("green", T0, 60).errors == 3
    assert ws.snapshot("blue", T0, 60).release == "blue"
    assert ws.snapshot("blue", T0, 60).requests == 1
    ws.reset("green")
    assert ws.snapshot("green", T0, 60).requests == 0
    assert ws.snapshot("blue", T0, 60).requests == 1
    ws.record("green", 200, 0.010, T0)  # a reset window fills again
    assert ws.snapshot("green", T0, 60).requests == 1
    assert ws.snapshot("purple", T0, 60) == WindowStats(release="purple")
    ws.reset("purple")  # unknown release: nothing to forget


def test_window_needs_at_least_a_second() -> None:
    with pytest.raises(ValueError):
        ReleaseWindow(max_window_s=0.5)
