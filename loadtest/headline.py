"""The headline: CPU per request as per-core ratios, and the performance goals beside them.

- **per-core ratio** of a front = nginx's CPU per request ÷ the front's, in the same round, at
  the same size and connections: 1.0 costs as much CPU as nginx, 0.5 twice as much.
- **variant ratio** = plain Switchback's CPU per request ÷ the variant's: what the rules cost
  (0.8: the rules add a quarter to plain's cost).

A ratio is taken per round (the two runs ran minutes apart at most, in the same conditions)
and the median over the rounds is reported with the lowest and highest round. CPU per
request moves by a few percent between rounds where throughput swings by tens of percent,
which is why it, not req/s, is the headline.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import report

NGINX, PLAIN, RULES = "nginx", "switchback", "switchback+rules"
LOGGED = "switchback+plain-logged"
RSS_LIMIT_KB = 80e6 / 1024  # 80 MB


@dataclass(frozen=True)
class Ratio:
    median: float
    low: float
    high: float

    def __str__(self) -> str:
        if self.low == self.high:
            return f"{self.median:.2f}"
        return f"{self.median:.2f} ({self.low:.2f}–{self.high:.2f})"


def ratio(
    runs: Sequence[dict[str, Any]], num: str, den: str, size: str, conns: int
) -> Ratio | None:
    """Median over the rounds of num's CPU per request ÷ den's; None without a pair."""
    by_round: dict[int, dict[str, float]] = {}
    for r in runs:
        if r["size"] == size and r["connections"] == conns and r["target"] in (num, den):
            by_round.setdefault(r["round"], {})[r["target"]] = r["cpu_us"]
    values = [p[num] / p[den] for p in by_round.values() if num in p and den in p and p[den]]
    if not values:
        return None
    return Ratio(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class Goal:
    what: str
    num: str
    den: str
    size: str
    load: str  # "busy" or "wide": resolved to the run's connection counts
    at_least: float


GOALS = (
    Goal("two rules vs none (plain ÷ rules)", PLAIN, RULES, "1KB", "busy", 0.8),
    Goal("two rules vs none (plain ÷ rules)", PLAIN, RULES, "100KB", "busy", 0.4),
    Goal("no rules vs nginx (nginx ÷ plain)", NGINX, PLAIN, "1KB", "busy", 0.6),
    Goal("no rules vs nginx (nginx ÷ plain)", NGINX, PLAIN, "1KB", "wide", 0.5),
    Goal("no rules vs nginx (nginx ÷ plain)", NGINX, PLAIN, "100KB", "busy", 0.85),
    Goal("access log, JSON to a file (plain ÷ plain-logged)", PLAIN, LOGGED, "1KB", "busy", 0.9),
)


def goals_table(
    runs: Sequence[dict[str, Any]],
    busy: int,
    wide: int | None,
    peak_rss_kb: dict[str, int],
    memory_load: tuple[str, int],
) -> list[str]:
    rows = []
    for goal in GOALS:
        conns = busy if goal.load == "busy" else wide
        if conns is None:
            continue
        found = ratio(runs, goal.num, goal.den, goal.size, conns)
        met = "–" if found is None else ("yes" if found.median >= goal.at_least else "no")
        where = f"{goal.size}, {conns} conns"
        rows.append((goal.what, where, f"≥ {goal.at_least:.2f}", str(found or "–"), met))
    rss = peak_rss_kb.get(RULES)
    met = "–" if rss is None else ("yes" if rss < RSS_LIMIT_KB else "no")
    size, conns = memory_load
    where = f"{size}, {conns} conns"
    rows.append(("peak RSS with rules", where, "< 80 MB", report.mb(rss), met))
    return report.table(("goal", "where", "target", "measured: median (rounds)", "met"), rows)


def per_core_table(
    runs: Sequence[dict[str, Any]], fronts: Sequence[str], sizes: Sequence[str], loads: list[int]
) -> list[str]:
    """Every front's CPU per request, its per-core ratio, and (variants) its variant ratio."""
    cells = report.aggregate(runs)
    rows = []
    for size in sizes:
        for conns in loads:
            for front in fronts:
                cell = cells.get((front, size, conns))
                if cell is None:
                    continue
                vs_nginx = ratio(runs, NGINX, front, size, conns) if front != NGINX else None
                vs_plain = (
                    ratio(runs, PLAIN, front, size, conns)
                    if front.startswith(PLAIN + "+")
                    else None
                )
                cpu = report.us(cell.cpu_us)
                rows.append(
                    (front, size, str(conns), cpu, str(vs_nginx or "–"), str(vs_plain or "–"))
                )
    header = (
        "front",
        "size",
        "conns",
        "CPU/request",
        "per core vs nginx (nginx ÷ front)",
        "vs plain (plain ÷ variant)",
    )
    return report.table(header, rows)
