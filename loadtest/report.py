"""From raw runs to the markdown tables bench.py prints: results per target, memory, noise.

Each (target, size, connections) cell is the median over the rounds; "±" is half the spread
between the lowest and the highest round, relative to the median, so a noisy machine shows.
The headline ratios are in headline.py.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str, int]  # target, size, connections


@dataclass(frozen=True)
class Cell:
    rps: float
    rps_spread: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # the front's CPU per request, microseconds
    cpu_spread: float
    user_us: float  # its user and system parts, each the median over the rounds (nan: a run
    system_us: float  # saved before they were recorded)
    front_cores: float  # the front's CPU time over the run's wall time: 1.0 is one core busy
    errors: int  # non-2xx answers and socket errors, all rounds
    count_gaps: int  # rounds where the front's own count disagreed with wrk's
    rounds: int


def spread(values: Sequence[float]) -> float:
    median = statistics.median(values)
    return (max(values) - min(values)) / 2 / median if median else 0.0


def group(runs: Iterable[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    groups: dict[Key, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["target"], run["size"], run["connections"]), []).append(run)
    return groups


def aggregate(runs: Iterable[dict[str, Any]]) -> dict[Key, Cell]:
    cells = {}
    for key, rows in group(runs).items():
        rps = [r["rps"] for r in rows]
        cpu = [r["cpu_us"] for r in rows]
        cells[key] = Cell(
            rps=statistics.median(rps),
            rps_spread=spread(rps),
            p50_ms=statistics.median(r["p50_ms"] for r in rows),
            p99_ms=statistics.median(r["p99_ms"] for r in rows),
            cpu_us=statistics.median(cpu),
            cpu_spread=spread(cpu),
            user_us=statistics.median(r.get("user_us", math.nan) for r in rows),
            system_us=statistics.median(r.get("system_us", math.nan) for r in rows),
            front_cores=statistics.median(r["front_cores"] for r in rows),
            errors=sum(r["non_2xx"] + r["socket_errors"] for r in rows),
            count_gaps=sum(not r["count_ok"] for r in rows),
            rounds=len(rows),
        )
    return cells


def ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f} ms"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def us(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.1f} µs" if value < 100 else f"{value:,.0f} µs"


def mb(kb: int | None) -> str:
    """KiB as MB (10^6 bytes), the unit of the memory goal."""
    return "–" if kb is None else f"{kb * 1024 / 1e6:.1f} MB"


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def results_table(
    cells: dict[Key, Cell], targets: Sequence[str], sizes: Sequence[str], loads: Sequence[int]
) -> list[str]:
    rows = []
    for size in sizes:
        for conns in loads:
            for target in targets:
                cell = cells.get((target, size, conns))
                if cell is None:
                    continue
                rps, cpu = f"{cell.rps:,.0f}", us(cell.cpu_us)
                if cell.rounds > 1:
                    rps += f" ±{cell.rps_spread:.0%}"
                    cpu += f" ±{cell.cpu_spread:.0%}"
                if cell.errors:
                    rps += f" ({cell.errors} errors!)"
                if cell.count_gaps:
                    cpu += f" (count off in {cell.count_gaps} round(s)!)"
                cores = f"{cell.front_cores:.0%}"
                split = f"{us(cell.user_us)} / {us(cell.system_us)}"
                row = (target, size, str(conns), rps, ms(cell.p50_ms), ms(cell.p99_ms), cpu)
                rows.append((*row, split, cores))
    header = (
        "target", "size", "conns", "req/s", "p50", "p99", "CPU/request", "user / system",
        "front busy",
    )  # fmt: skip
    return table(header, rows)


def memory_table(memory: dict[str, dict[str, int]], fronts: Sequence[str]) -> list[str]:
    rows = [
        (name, mb(memory[name].get("VmHWM")), mb(memory[name].get("VmRSS")))
        for name in fronts
        if name in memory
    ]
    return table(("front", "peak RSS", "RSS at the end"), rows)


def noise_line(runs: Sequence[dict[str, Any]], load_start: float, load_end: float) -> str:
    """How much else the machine did while the runs ran."""
    if not runs:
        return ""
    other = [r["other_cores"] for r in runs]
    steal = [r["steal_cores"] for r in runs]
    load = [r["load_average"] for r in runs]
    return (
        f"Other work on the machine during the runs: median {statistics.median(other):.2f} "
        f"of a core, the busiest run {max(other):.2f}; steal median "
        f"{statistics.median(steal):.2f}, max {max(steal):.2f}; load average "
        f"{load_start:.1f} at the start, {max(load):.1f} at the most, {load_end:.1f} at the end."
    )
