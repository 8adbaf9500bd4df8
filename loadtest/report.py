"""From raw wrk runs to the markdown tables bench.py prints.

Each (target, size, connections) cell is the median over the rounds; "±" is half the spread
between the slowest and the fastest round, relative to the median, so a noisy machine shows.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Cell:
    target: str
    size: str
    connections: int
    rps: float
    spread: float  # (max - min) / 2 / median of req/s over the rounds
    p50_ms: float
    p99_ms: float
    errors: int
    rounds: int


def aggregate(runs: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], Cell]:
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["target"], run["size"], run["connections"]), []).append(run)
    cells = {}
    for key, rows in groups.items():
        rps = [r["rps"] for r in rows]
        median = statistics.median(rps)
        cells[key] = Cell(
            *key,
            rps=median,
            spread=(max(rps) - min(rps)) / 2 / median if median else 0.0,
            p50_ms=statistics.median(r["p50_ms"] for r in rows),
            p99_ms=statistics.median(r["p99_ms"] for r in rows),
            errors=sum(r["non_2xx"] + r["socket_errors"] for r in rows),
            rounds=len(rows),
        )
    return cells


def ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def signed_ms(value: float) -> str:
    return ("+" if value >= 0 else "−") + ms(abs(value))


def mib(kb: int | None) -> str:
    return "–" if kb is None else f"{kb / 1024:.1f} MiB"


def _ratio(a: Cell | None, b: Cell | None) -> str:
    return f"{a.rps / b.rps:.2f}" if a and b and b.rps else "–"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def results_table(
    cells: dict[tuple[str, str, int], Cell],
    targets: Sequence[str],
    sizes: Sequence[str],
    loads: Sequence[int],
    peak_rss_kb: dict[str, int],
) -> list[str]:
    rows = []
    for size in sizes:
        for conns in loads:
            for target in targets:
                cell = cells.get((target, size, conns))
                if cell is None:
                    continue
                rps = f"{cell.rps:,.0f}"
                if cell.rounds > 1:
                    rps += f" ±{cell.spread:.0%}"
                if cell.errors:
                    rps += f" ({cell.errors} errors!)"
                rss = mib(peak_rss_kb.get(target))
                rows.append((target, size, str(conns), rps, ms(cell.p50_ms), ms(cell.p99_ms), rss))
    header = ("target", "size", "conns", "req/s", "p50", "p99", "peak RSS")
    return _table(header, rows)


def ratios_table(
    cells: dict[tuple[str, str, int], Cell],
    fronts: Sequence[str],
    sizes: Sequence[str],
    busy: int,
) -> list[str]:
    """Each front (nginx, switchback variants) against direct, nginx and switchback plain.

    Throughput ratios are at ``busy`` connections; the added p99 is at one connection, where
    it is the proxy's own latency rather than queueing.
    """
    rows = []
    for size in sizes:
        direct = cells.get(("direct", size, busy))
        nginx = cells.get(("nginx", size, busy))
        plain = cells.get(("switchback", size, busy))
        direct1 = cells.get(("direct", size, 1))
        for front in fronts:
            cell = cells.get((front, size, busy))
            if cell is None:
                continue
            cell1 = cells.get((front, size, 1))
            added = signed_ms(cell1.p99_ms - direct1.p99_ms) if cell1 and direct1 else "–"
            vs_nginx = _ratio(cell, nginx) if front != "nginx" else "–"
            vs_plain = _ratio(cell, plain) if front.startswith("switchback+") else "–"
            rows.append((front, size, _ratio(cell, direct), vs_nginx, added, vs_plain))
    header = (
        "front",
        "size",
        f"req/s ÷ direct ({busy} conns)",
        "req/s ÷ nginx",
        "p99 − direct p99 (1 conn)",
        "req/s ÷ switchback plain",
    )
    return _table(header, rows)
