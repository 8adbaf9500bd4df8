"""CPU per request, throughput, latency and memory: Switchback against nginx, on this machine.

    .venv/bin/python loadtest/bench.py            # what `make bench` runs, about 13 minutes
    .venv/bin/python loadtest/bench.py --quick    # a few minutes

For a 1 KB and a 100 KB JSON body (bodies.py) served by an upstream nginx without ETags, it
runs wrk against the upstream directly, nginx in front, and Switchback in front in each
variant (configs.py: plain, rules, rules-hit, rules-etag), in alternation round after round,
so a machine that gets busier slows every target alike. Every target gets a busy run
(``--connections``, 32) and a one-connection run; nginx and plain Switchback also a run at
``--wide-connections`` (200). Around every run the front's CPU time is read from /proc and
divided by the requests wrk completed (meter.py). The headline is CPU per request as per-core
ratios against nginx and against plain Switchback, beside the project's goals (headline.py).
A last run per front at 100 KB and ``--memory-connections`` (50) precedes reading peak RSS.

It prints markdown tables and writes every run to loadtest/results/<timestamp>.json. See
loadtest/README.md for what each number means.

Exit status: 0 done; 1 a server failed to start or answered wrongly; 2 wrk or nginx missing,
or bad arguments; 130 interrupted. Every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import Any

import bodies
import headline
import meter
import options
import procstat
import report
import targets
import wrk
from bodies import SIZES
from configs import CLIENT_HEADER
from processes import Processes, StartError
from targets import Target

from proxy.cli.progress import Progress
from proxy.cli.progress import duration as time_left

RESULTS = Path(__file__).resolve().parent / "results"
INSTALL_HINT = "install with: sudo apt-get install wrk nginx-light"
WIDE_FRONTS = (headline.NGINX, headline.PLAIN)  # the fronts of the wide-connection runs

Load = tuple[int, str, list[Target]]  # connections, duration, targets


def find_tools() -> dict[str, str]:
    """Paths of wrk and nginx; nginx often lives in /usr/sbin, outside a user's PATH."""
    found = {
        "wrk": shutil.which("wrk"),
        "nginx": shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin"),
    }
    missing = [name for name, path in found.items() if path is None]
    if missing:
        print(f"bench: {' and '.join(missing)} not found; {INSTALL_HINT}", file=sys.stderr)
        raise SystemExit(2)
    return {name: str(path) for name, path in found.items()}


def machine(tools: dict[str, str]) -> dict[str, Any]:
    def first_line(argv: list[str]) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        return (proc.stdout + proc.stderr).strip().splitlines()[0]

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "-C", str(targets.REPO), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": first_line([tools["nginx"], "-v"]),
        "wrk": first_line([tools["wrk"], "-v"]),
        "commit": commit,
        "clock_tick_s": procstat.TICK,
        "body_bytes": {size: len(bodies.make_body(n, "blue")) for size, (_, n) in SIZES.items()},
        "load_average_at_start": os.getloadavg(),
    }


# --- measuring --------------------------------------------------------------------------------


def loads(args: argparse.Namespace, fronts: list[Target]) -> list[Load]:
    wide = [t for t in fronts if t.name in WIDE_FRONTS]
    out: list[Load] = [(args.connections, args.duration, fronts)]
    if len(wide) == len(WIDE_FRONTS):
        out += [(conns, args.duration, wide) for conns in args.wide_connections]
    return [*out, (1, args.low_duration, fronts)]


def planned_seconds(args: argparse.Namespace, fronts: list[Target]) -> int:
    secs = options.seconds
    per_round = sum(secs(d) * len(ts) for _, d, ts in loads(args, fronts)) * len(args.sizes)
    warm = secs(args.warmup) * len(args.sizes) * sum(len(ts) for _, _, ts in loads(args, fronts))
    memory = secs(args.memory) * (len(fronts) - 1) if args.memory_connections else 0
    return int(args.rounds) * per_round + warm + memory


def measure(args: argparse.Namespace, fronts: list[Target]) -> list[dict[str, Any]]:
    upstream = fronts[0]
    planned = planned_seconds(args, fronts)
    print(f"\nwarming up, then {args.rounds} rounds: about {planned / 60:.0f} min", flush=True)
    status = Status(planned)
    for size in args.sizes:
        for conns, _, group in loads(args, fronts):
            for target in group:
                status.show(f"warming up {target.name} {size} c{conns}")
                url = target.base_url + SIZES[size][0]
                wrk.run(url, conns, args.warmup, CLIENT_HEADER, target.wrk_args)
    runs: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for size in args.sizes:
            for conns, duration, group in loads(args, fronts):
                for target in group:
                    status.show(f"round {rnd}/{args.rounds} {target.name} {size} c{conns}")
                    row = meter.run(target, upstream, SIZES[size][0], conns, duration)
                    row = {"round": rnd, "target": target.name, "size": size, **row}
                    row["load_average"] = os.getloadavg()[0]  # noise from other work
                    runs.append(row)
                    status.progress.clear()
                    print_run(row)
    status.progress.clear()
    return runs


class Status:
    """What runs now and about how long is left, on a terminal's stderr (quiet in CI)."""

    def __init__(self, planned: float) -> None:
        self.progress = Progress()
        self.began = time.monotonic()
        self.planned = planned

    def show(self, what: str) -> None:
        left = self.planned - (time.monotonic() - self.began)
        self.progress.show(f"bench: {what}; about {time_left(left)} left", force=True)


def print_run(row: dict[str, Any]) -> None:
    errors = row["non_2xx"] + row["socket_errors"]
    warn = f"  {errors} errors!" if errors else ""
    if not row["settled"]:
        warn += "  the upstream was still busy from the previous run!"
    if not row["count_ok"]:
        warn += f"  the front counted {row['answered']} requests, wrk {row['requests']}!"
    print(
        f"  round {row['round']}  {row['size']:>5}  c{row['connections']:<3}"
        f" {row['target']:<21} {row['rps']:>8,.0f} req/s  p50 {report.ms(row['p50_ms']):>9}"
        f"  p99 {report.ms(row['p99_ms']):>9}  {report.us(row['cpu_us']):>9}/req"
        f" (system {report.us(row['system_us'])})  {row['front_cores']:>4.0%} core{warn}",
        flush=True,
    )


def largest(sizes: list[str]) -> str:
    return max(sizes, key=lambda size: SIZES[size][1])


def memory_runs(
    args: argparse.Namespace, fronts: list[Target]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """One run per front at the largest size and ``--memory-connections``, then peak RSS."""
    runs = []
    if args.memory_connections:
        size = largest(args.sizes)
        print(f"\nmemory: {size} at {args.memory_connections} connections", flush=True)
        for target in fronts[1:]:
            row = meter.run(target, fronts[0], SIZES[size][0], args.memory_connections, args.memory)
            runs.append({"target": target.name, "size": size, **row})
    memory = {t.name: procstat.memory_kb(t.pid) for t in fronts[1:]}
    return runs, memory


def print_report(
    args: argparse.Namespace,
    info: dict[str, Any],
    fronts: list[Target],
    runs: list[dict[str, Any]],
    memory: dict[str, dict[str, int]],
) -> list[str]:
    names = [t.name for t in fronts]
    busy_loads = [args.connections, *args.wide_connections, 1]
    wide = args.wide_connections[0] if args.wide_connections else None
    hwm = {name: mem["VmHWM"] for name, mem in memory.items() if "VmHWM" in mem}
    memory_load = (largest(args.sizes), args.memory_connections)
    sizes = ", ".join(f"{s} = {n:,} bytes" for s, n in info["body_bytes"].items())
    lines = [
        f"## Results: commit {info['commit']}, {info['cpus']} CPU(s) {info['cpu_model']}, "
        f"{info['nginx']}, Python {info['python']}; {args.rounds} round(s) of "
        f"{args.duration} (busy) / {args.low_duration} (1 conn); bodies {sizes}",
        "",
        "### Goals: CPU per request as ratios, medians of alternating rounds",
        "",
        *headline.goals_table(runs, args.connections, wide, hwm, memory_load),
        "",
        "### CPU per request and per-core ratios",
        "",
        *headline.per_core_table(runs, names[1:], args.sizes, busy_loads),
        "",
        "### Every target",
        "",
        *report.results_table(report.aggregate(runs), names, args.sizes, busy_loads),
        "",
        f"### Memory (after the {memory_load[0]} run at {memory_load[1]} connections)",
        "",
        *report.memory_table(memory, names[1:]),
        "",
        report.noise_line(runs, info["load_average_at_start"][0], os.getloadavg()[0]),
    ]
    print("\n" + "\n".join(lines))
    return lines


def save(args: argparse.Namespace, info: dict[str, Any], **data: Any) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    info = {**info, "load_average_at_end": os.getloadavg()}
    arguments = {k: v for k, v in vars(args).items() if k != "keep"}
    path.write_text(json.dumps({"machine": info, "args": arguments, **data}, indent=2) + "\n")
    return path


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, through the finally below


def main(argv: list[str] | None = None) -> int:
    args = options.parse(argv)
    tools = find_tools()
    info = machine(tools)
    if info["load_average_at_start"][0] > 0.5 * (info["cpus"] or 1):
        print(
            f"bench: note: load average {info['load_average_at_start'][0]:.1f} on "
            f"{info['cpus']} CPU(s); other work will add noise to the numbers",
            file=sys.stderr,
        )
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="switchback-bench-"))
    procs = Processes(work)
    try:
        print(f"starting servers (configs and logs in {work})", flush=True)
        files = bodies.write_site(work / "site")
        fronts = targets.start(procs, tools["nginx"], args.variants, work / "site")
        for size in args.sizes:
            for target in fronts:
                targets.check(target, size, files)
        runs = measure(args, fronts)
        mem_runs, memory = memory_runs(args, fronts)
        table = print_report(args, info, fronts, runs, memory)
        path = save(args, info, runs=runs, memory_runs=mem_runs, memory_kb=memory, table=table)
        print(f"\nraw numbers: {path.relative_to(targets.REPO)}")
        return 0
    except (StartError, wrk.WrkError, OSError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping servers", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
