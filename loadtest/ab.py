"""CPU per request of two (or more) Switchback fronts side by side, in alternating rounds.

    .venv/bin/python loadtest/ab.py before=../other-checkout now=. [--pool now=64] \\
        [--variant plain] [--path /users/1] [--connections 32] [--rounds 5]

Each front is a checkout of this repository (``name=path``; its ``proxy`` package is what runs)
in front of the same nginx upstream (``bodies.write_site``, no ETags). ``--pool name=N`` sets a
front's ``upstream.pool_size``, to compare configurations of one checkout. Each round runs wrk
against every front in turn, and reads the front's user+system time from /proc around its run:
the figure is CPU microseconds per request, the median over the rounds, with its system part
beside it. Fronts alternate, so a noisy moment of the machine hurts them alike; rounds still
spread by 10-30% on a shared 2-core machine, so compare medians of several rounds, or use
``instructions.py``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import configs
import procstat
from processes import await_ready, free_port, plain_upstream, scratch, start_checkout

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fronts", nargs="+", help="name=checkout, e.g. before=/tmp/old now=.")
    p.add_argument("--pool", action="append", default=[], help="name=N: upstream.pool_size")
    p.add_argument("--variant", default="plain", choices=sorted(configs.VARIANTS))
    p.add_argument("--path", default="/users/1", help="/users/1 (1 KB) or /users/100 (100 KB)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", default="5s")
    return p.parse_args(argv)


def cpu_times(pid: int) -> tuple[float, float]:
    times = procstat.cpu_times(pid)
    if times is None:
        raise SystemExit(f"ab: process {pid} is gone")
    return times


def wrk(url: str, connections: int, duration: str) -> int:
    """Run wrk; the number of requests it completed."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "-s", str(HERE / "clients.lua")]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    return int(next(line for line in out.splitlines() if "requests in" in line).split()[0])


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    fronts = dict(item.split("=", 1) for item in args.fronts)
    pools = dict(item.split("=", 1) for item in args.pool)
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None or shutil.which("wrk") is None:
        print("ab: wrk and nginx are needed (apt-get install wrk nginx-light)", file=sys.stderr)
        return 2
    with scratch("switchback-ab-") as (work, procs):
        upstream, ports = plain_upstream(work, nginx)
        procs.append(upstream)
        running: dict[str, tuple[int, str]] = {}
        for name, checkout in fronts.items():
            listen, admin = free_port(), free_port()
            (work / name).mkdir()  # the front's state, and its access log (plain-logged)
            text = configs.switchback_conf(work / name, args.variant, listen, admin, ports)
            if name in pools:
                text += f"upstream:\n  pool_size: {int(pools[name])}\n"
            proc = start_checkout(work, name, checkout, text)
            procs.append(proc)
            url = f"http://127.0.0.1:{listen}{args.path}"
            await_ready(url, tries=200, pause=0.1)
            wrk(url, args.connections, "2s")  # warm-up
            running[name] = (proc.pid, url)
        figures: dict[str, list[float]] = {name: [] for name in running}
        system: dict[str, list[float]] = {name: [] for name in running}
        for rnd in range(1, args.rounds + 1):
            for name, (pid, url) in running.items():
                user0, system0 = cpu_times(pid)
                n = wrk(url, args.connections, args.duration)
                time.sleep(0.3)  # what was still in flight at the end of the run
                user1, system1 = cpu_times(pid)
                figures[name].append((user1 + system1 - user0 - system0) / n * 1e6)
                system[name].append((system1 - system0) / n * 1e6)
                print(
                    f"round {rnd}  {name:>10}  {n:8d} requests  {figures[name][-1]:7.1f} µs each"
                    f" (system {system[name][-1]:.1f})"
                )
        for name, values in figures.items():
            print(
                f"{name:>10}: median {statistics.median(values):.1f} µs of CPU per request "
                f"(min {min(values):.1f}, max {max(values):.1f}; system part, median "
                f"{statistics.median(system[name]):.1f})"
            )
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
