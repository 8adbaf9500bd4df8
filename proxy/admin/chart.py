"""Inline SVG line charts for the status page, drawn on the server (no script, no assets).

``analysis_charts`` reads the runtime's history samples (``proxy.core.history``) and draws the
two things a rollout is judged on, the 5xx rate and the p99 latency over the rollout's window,
for the candidate against the stable release. Roles are read per sample, so a promotion in the
middle of the history does not swap the lines. A missing value (no requests, so no p99) breaks
the line instead of drawing a zero. Pure: strings in, a string out; every label is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

Point = tuple[float, float | None]  # (unix seconds, value or None)

WIDTH, HEIGHT = 560, 150
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 22  # plot margins
COLOURS = {"candidate": "#d9480f", "stable": "#1c7ed6"}


def analysis_charts(samples: Sequence[dict[str, Any]]) -> str:
    """The two charts, or a sentence saying there is nothing to draw yet."""
    if len(samples) < 2:
        return '<p class="muted">Not enough samples yet (one every few seconds).</p>'
    errors = {role: _series(samples, role, "error_rate", 100.0) for role in COLOURS}
    p99 = {role: _series(samples, role, "p99_ms", 1.0) for role in COLOURS}
    return "\n".join(
        [
            line_chart("5xx rate (%)", errors, floor=1.0, fmt=lambda v: f"{v:.2g}%"),
            line_chart("p99 latency (ms)", p99, floor=10.0, fmt=lambda v: f"{v:.3g} ms"),
        ]
    )


def _series(samples: Sequence[dict[str, Any]], role: str, key: str, scale: float) -> list[Point]:
    points: list[Point] = []
    for sample in samples:
        stats = (sample.get("releases") or {}).get(sample.get(role)) or {}
        value = stats.get(key)
        number = value * scale if isinstance(value, int | float) else None
        points.append((float(sample["at"]), number))
    return points


def line_chart(
    title: str,
    series: dict[str, list[Point]],
    *,
    floor: float,
    fmt: Callable[[float], str],
) -> str:
    """One chart: a line per series, the y axis from 0 to the largest value (at least
    ``floor``), the x axis from the first sample to the last."""
    times = [t for points in series.values() for t, _ in points]
    values = [v for points in series.values() for _, v in points if v is not None]
    t0, t1 = min(times), max(times)
    top = max([floor, *values])
    span = t1 - t0 or 1.0

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * (WIDTH - LEFT - RIGHT)

    def y(v: float) -> float:
        return TOP + (1 - v / top) * (HEIGHT - TOP - BOTTOM)

    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}" stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{y(top):.1f}" x2="{WIDTH - RIGHT}" y2="{y(top):.1f}" '
        'stroke="#ddd"/>',
        _text(LEFT - 4, y(top) + 4, fmt(top), "end"),
        _text(LEFT - 4, y(0) + 4, fmt(0.0), "end"),
        _text(LEFT, HEIGHT - 6, f"-{t1 - t0:.0f} s", "start"),
        _text(WIDTH - RIGHT, HEIGHT - 6, "now", "end"),
    ]
    for i, (role, points) in enumerate(series.items()):
        colour = COLOURS.get(role, "#555")
        for run in _runs(points):
            coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            if len(run) == 1:
                t, v = run[0]
                parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2" fill="{colour}"/>')
            else:
                parts.append(
                    f'<polyline class="series-{escape(role)}" points="{coords}" fill="none" '
                    f'stroke="{colour}" stroke-width="2"/>'
                )
        parts.append(_text(LEFT + 8 + 90 * i, TOP + 10, role, "start", colour))
    parts.append("</svg>")
    return f"<figure><figcaption>{escape(title)}</figcaption>{''.join(parts)}</figure>"


def _runs(points: list[Point]) -> list[list[tuple[float, float]]]:
    """The stretches of ``points`` with a value, in order."""
    runs: list[list[tuple[float, float]]] = [[]]
    for t, v in points:
        if v is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((t, v))
    return [run for run in runs if run]


def _text(x: float, y: float, text: str, anchor: str, colour: str = "#555") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="11" text-anchor="{anchor}" '
        f'fill="{colour}">{escape(text)}</text>'
    )
