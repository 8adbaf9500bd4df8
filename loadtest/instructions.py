"""Instructions per request of a Switchback checkout, counted by valgrind (callgrind).

    .venv/bin/python loadtest/instructions.py [CHECKOUT] [--variant plain] [--path /users/1]

CPU time per request moves by 10-30% between rounds on a shared machine; an instruction count
does not: the same code, inputs and environment give the same count whatever else runs. The
front runs under callgrind twice, for ``--few`` and for ``--many`` requests sent one after the
other on one keep-alive connection; the difference of the two totals, divided by the difference
in requests, is the cost of a request (start-up and shutdown cancel out). User-space
instructions only: the kernel's part of a read or a write is not counted. Slow (valgrind runs
some 50 times slower): a few minutes.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import configs
from processes import await_ready, free_port, get_in_sequence, one_front_parser, plain_upstream


def count(
    checkout: Path, work: Path, variant: str, path: str, ports: dict[str, int], n: int
) -> int:
    listen, admin = free_port(), free_port()
    text = configs.switchback_conf(work / f"run-{n}", variant, listen, admin, ports)
    # Under valgrind the event loop runs late by design: no load shedding for the count (on a
    # checkout that sheds load at all).
    if any("max_loop_lag" in f.read_text() for f in checkout.glob("proxy/**/*.py")):
        text += "limits:\n  max_loop_lag: 1000\n"
    conf = work / f"switchback-{n}.yaml"
    conf.write_text(text)
    out = work / f"callgrind-{n}.out"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
    argv += ["-m", "proxy", "run", "--config", str(conf)]
    log = (work / f"switchback-{n}.log").open("wb")
    proc = subprocess.Popen(argv, cwd=checkout, stderr=log, stdout=subprocess.DEVNULL)  # noqa: S603
    await_ready(f"http://127.0.0.1:{admin}/readyz", pause=0.5)
    get_in_sequence(listen, path, n)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=600)
    found = re.search(r"^(?:summary|totals): (\d+)", out.read_text(errors="replace"), re.M)
    if found is None:
        raise SystemExit(f"instructions: no total in {out}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    p = one_front_parser(__doc__)
    p.add_argument("--few", type=int, default=500)
    p.add_argument("--many", type=int, default=2500)
    args = p.parse_args(argv)
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None or shutil.which("valgrind") is None:
        print("instructions: nginx and valgrind are needed (apt-get install nginx-light valgrind)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="switchback-instructions-"))
    upstream: subprocess.Popen[bytes] | None = None
    try:
        upstream, ports = plain_upstream(work, nginx)
        checkout = Path(args.checkout).resolve()
        few = count(checkout, work, args.variant, args.path, ports, args.few)
        many = count(checkout, work, args.variant, args.path, ports, args.many)
        per = (many - few) / (args.many - args.few)
        print(f"{checkout}: {per:,.0f} instructions per request ({args.variant} {args.path})")
        return 0
    finally:
        if upstream is not None:
            upstream.terminate()
            upstream.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
