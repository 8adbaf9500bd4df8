"""Bytecodes per request of a Switchback checkout, per Python function.

    .venv/bin/python loadtest/opcodes.py [CHECKOUT] [--variant plain] [--path /users/1] [--top 40]

``instructions.py`` says how much a request costs; this says where the Python of it goes. The
front runs with a tracer (``sys.settrace`` with ``f_trace_opcodes``) that counts, per function,
the calls and the bytecodes executed while it is switched on: around ``--requests`` requests
sent one after the other on one keep-alive connection, after a warm-up. Counts, not times: the
same code and inputs give the same figures on a busy machine (timers that fire during the run
add a little). Bytecodes are what CPython's eval loop spends most of a request on; the C below
them (llhttp, msgspec, the kernel's reads and writes) is not counted here.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import configs
from processes import (
    await_ready,
    free_port,
    get_in_sequence,
    one_front_parser,
    plain_upstream,
    scratch,
)

# Run inside the front: count while SIGUSR1 has switched counting on; write the counts to
# argv[1] when it switches it off again.
TRACER = r"""
import collections, json, runpy, signal, sys, threading
out = sys.argv[1]
sys.argv = ["proxy", *sys.argv[2:]]
ops, calls, on = collections.Counter(), collections.Counter(), [False]
def local(frame, event, arg):
    if event == "opcode":
        ops[frame.f_code] += 1
    return local
def start(frame, event, arg):
    if not on[0]:
        return None
    frame.f_trace_opcodes = True
    calls[frame.f_code] += 1
    return local
def toggle(*_):
    on[0] = not on[0]
    if not on[0]:
        rows = [[n, calls[c], c.co_filename, c.co_firstlineno, c.co_name] for c, n in ops.items()]
        with open(out, "w") as f:
            json.dump(rows, f)
signal.signal(signal.SIGUSR1, toggle)
sys.settrace(start)
threading.settrace(start)
runpy.run_module("proxy", run_name="__main__")
"""


def main(argv: list[str] | None = None) -> int:
    p = one_front_parser(__doc__)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        print("opcodes: nginx is needed (apt-get install nginx-light)")
        return 2
    with scratch("switchback-opcodes-") as (work, procs):
        upstream, ports = plain_upstream(work, nginx)
        procs.append(upstream)
        checkout = Path(args.checkout).resolve()
        listen, admin = free_port(), free_port()
        conf = work / "switchback.yaml"
        conf.write_text(configs.switchback_conf(work / "run", args.variant, listen, admin, ports))
        (work / "tracer.py").write_text(TRACER)
        counts = work / "counts.json"
        argv_ = [sys.executable, str(work / "tracer.py"), str(counts), "run", "--config", str(conf)]
        log = (work / "switchback.log").open("wb")
        front = subprocess.Popen(argv_, cwd=checkout, stdout=log, stderr=log)  # noqa: S603
        procs.append(front)
        await_ready(f"http://127.0.0.1:{admin}/readyz")
        get_in_sequence(listen, args.path, 100)  # warm-up: imports, pools, caches
        front.send_signal(signal.SIGUSR1)
        get_in_sequence(listen, args.path, args.requests)
        front.send_signal(signal.SIGUSR1)
        for _ in range(300):
            if counts.exists() and counts.stat().st_size:
                break
            time.sleep(0.1)
        rows = json.loads(counts.read_text())
        n = args.requests
        total = sum(r[0] for r in rows)
        print(f"{checkout}: {total / n:,.0f} bytecodes per request ({args.variant} {args.path})")
        print(f"{'bytecodes':>10} {'calls':>6}  function")
        for ops, calls, filename, line, name in sorted(rows, reverse=True)[: args.top]:
            where = Path(filename)
            shown = where.relative_to(checkout) if where.is_relative_to(checkout) else where
            print(f"{ops / n:10.1f} {calls / n:6.2f}  {shown}:{line} {name}")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
