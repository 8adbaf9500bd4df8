"""CPU per request of each thread of a Switchback front, and its context switches.

    .venv/bin/python loadtest/threads.py now=. [before=../other-checkout] \\
        [--variant plain-logged] [--path /users/1] [--connections 32] [--rounds 3]

``ab.py`` reads a front's CPU time summed over its threads. This reads each thread's
(``/proc/<pid>/task/<tid>/stat``) around each wrk run, so the event loop (the process's main
thread) and the threads beside it (the access log's writer, the ledger's flush) are told
apart, with their voluntary and involuntary context switches per request
(``/proc/<pid>/task/<tid>/status``). A thread that took less than 10 ms and switched fewer than
100 times in a run is left out. Each front is a checkout of this repository, as in ``ab.py``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import configs
from ab import wrk
from processes import await_ready, free_port, plain_upstream, scratch, start_checkout
from procstat import parse_pid_times

Thread = tuple[float, float, int, int]  # user s, system s, voluntary, involuntary switches


def threads(pid: int) -> dict[int, Thread]:
    out: dict[int, Thread] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:  # it ended meanwhile
            continue
        user, system = parse_pid_times(stat)
        switches = {
            k: int(v) for k, _, v in (line.partition(":") for line in status.splitlines())
            if k in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
        }  # fmt: skip
        out[int(tid)] = (
            user,
            system,
            switches["voluntary_ctxt_switches"],
            switches["nonvoluntary_ctxt_switches"],
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fronts", nargs="+", help="name=checkout, e.g. now=.")
    p.add_argument("--variant", default="plain-logged", choices=sorted(configs.VARIANTS))
    p.add_argument("--path", default="/users/1", help="/users/1 (1 KB) or /users/100 (100 KB)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", default="5s")
    args = p.parse_args(argv)
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None or shutil.which("wrk") is None:
        print(
            "threads: wrk and nginx are needed (apt-get install wrk nginx-light)", file=sys.stderr
        )
        return 2
    with scratch("switchback-threads-") as (work, procs):
        upstream, ports = plain_upstream(work, nginx)
        procs.append(upstream)
        for name, checkout in (item.split("=", 1) for item in args.fronts):
            listen, admin = free_port(), free_port()
            (work / name).mkdir()
            text = configs.switchback_conf(work / name, args.variant, listen, admin, ports)
            proc = start_checkout(work, name, checkout, text)
            procs.append(proc)
            url = f"http://127.0.0.1:{listen}{args.path}"
            await_ready(url, tries=200, pause=0.1)
            wrk(url, args.connections, "2s")  # warm-up
            for rnd in range(1, args.rounds + 1):
                before = threads(proc.pid)
                n = wrk(url, args.connections, args.duration)
                time.sleep(0.3)  # what was still in flight at the end of the run
                after = threads(proc.pid)
                for tid, (user, system, vol, invol) in sorted(after.items()):
                    if tid not in before:
                        continue
                    user0, system0, vol0, invol0 = before[tid]
                    if user + system - user0 - system0 < 0.01 and vol - vol0 < 100:
                        continue
                    role = "event loop" if tid == proc.pid else f"thread {tid}"
                    print(
                        f"{name} round {rnd}  {role:>14}  user {(user - user0) / n * 1e6:5.1f} µs"
                        f"  system {(system - system0) / n * 1e6:5.1f} µs per request;"
                        f"  switches per request: voluntary {(vol - vol0) / n:.3f},"
                        f" involuntary {(invol - invol0) / n:.3f}"
                    )
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
