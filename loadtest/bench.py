"""Switchback against nginx and against no proxy at all, on this machine, with wrk.

    .venv/bin/python loadtest/bench.py                 # what `make bench` runs
    .venv/bin/python loadtest/bench.py --rounds 1 --duration 3s --variants none   # quick look

For a 1 KB and a 100 KB JSON body it measures, in alternation round after round (so a noisy
machine hurts every target alike): the release hit directly, nginx in front (one worker,
split_clients 90/10, keep-alive pools), and Switchback in front (the same split): plain; with
a deprecation rule on ``user.role`` as shipped (``rules``: a body whose strong ETag was already
inspected is not parsed again); and with the rule and that cache off (``rules-nocache``: every
body held and parsed, the cost for responses without a strong ETag). Each target gets a busy
run (``--connections``, default 50) and a one-connection run (the proxy's own latency). It
prints markdown tables and writes the raw numbers to
loadtest/results/<timestamp>.json. See loadtest/README.md for what each number means.

Exit status: 0 done; 1 a server failed to start or answered wrongly; 2 wrk or nginx missing,
or bad arguments; 130 interrupted. Every process started is stopped on the way out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

import report
import targets
import wrk
from targets import CLIENT_HEADER, HOST, SIZES, Processes, StartError, Target

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("plain", "rules", "rules-nocache")
INSTALL_HINT = "install with: sudo apt-get install wrk nginx-light"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="loadtest/bench.py",
        description="Throughput, latency and memory: direct vs nginx vs Switchback (wrk).",
    )
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--duration", default="10s", help="each busy wrk run (default 10s)")
    p.add_argument("--low-duration", default="5s", help="each one-connection wrk run (default 5s)")
    p.add_argument("--connections", type=int, default=50, help="busy-run connections (50)")
    p.add_argument(
        "--variants",
        default="plain,rules,rules-nocache",
        help="Switchback variants: plain, rules (ETag cache on, as shipped), rules-nocache "
        "(every body parsed); default all three, or none",
    )
    p.add_argument(
        "--sizes", default=",".join(SIZES), help=f"body sizes (default {','.join(SIZES)})"
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    args.variants = (
        [] if args.variants == "none" else _csv(p, "--variants", args.variants, VARIANTS)
    )
    args.sizes = _csv(p, "--sizes", args.sizes, tuple(SIZES))
    for name in ("duration", "low_duration"):
        if not re.fullmatch(r"\d+[smh]?", getattr(args, name)):
            p.error(f"--{name.replace('_', '-')}: {getattr(args, name)!r} is not like 10s")
    if args.rounds < 1 or args.connections < 1:
        p.error("--rounds and --connections must be at least 1")
    return args


def _csv(p: argparse.ArgumentParser, flag: str, text: str, known: tuple[str, ...]) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if item not in known:
            p.error(f"{flag}: {item!r} is not one of {', '.join(known)}")
    return items


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
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "nginx": first_line([tools["nginx"], "-v"]),
        "wrk": first_line([tools["wrk"], "-v"]),
        "load_average_at_start": os.getloadavg(),
    }


# --- starting the targets ---------------------------------------------------------------------


def start_targets(procs: Processes, tools: dict[str, str], variants: list[str]) -> list[Target]:
    work = procs.work
    site = work / "site"
    targets.write_site(site)
    blue, green, front = targets.free_port(), targets.free_port(), targets.free_port()

    def nginx(name: str, conf_text: str, port: int) -> Target:
        conf = work / f"{name}.conf"
        conf.write_text(conf_text)
        argv = [tools["nginx"], "-p", str(work), "-e", str(work / f"{name}-error.log")]
        proc = procs.start(f"nginx-{name}", [*argv, "-c", str(conf)])
        procs.wait_port(f"nginx-{name}", port)
        if name != "front":
            return Target("direct", f"http://{HOST}:{port}")
        return Target(
            "nginx", f"http://{HOST}:{port}", proc.pid, worker=True, expect_headers=("X-Served-By",)
        )

    direct = nginx("upstream", targets.upstream_nginx_conf(work, site, blue, green), blue)
    out = [direct, nginx("front", targets.front_nginx_conf(work, front, blue, green), front)]
    for variant in variants:
        listen, admin = targets.free_port(), targets.free_port()
        conf = work / f"switchback-{variant}.yaml"
        conf.write_text(targets.switchback_conf(work, variant, listen, admin, blue, green))
        name = "switchback" if variant == "plain" else f"switchback+{variant}"
        argv = [sys.executable, "-m", "proxy", "run", "--config", str(conf)]
        proc = procs.start(name, argv, cwd=REPO)
        procs.wait_ready(name, f"http://{HOST}:{admin}/readyz")
        with_rules = variant.startswith("rules")
        out.append(
            Target(
                name,
                f"http://{HOST}:{listen}",
                proc.pid,
                expect_headers=("X-Served-By", *(("Deprecation",) if with_rules else ())),
                refuse_headers=() if with_rules else ("Deprecation",),
            )
        )
    return out


def check(target: Target, size: str) -> None:
    """One request by hand before measuring: a fast wrong answer must not pass for speed."""
    path, length = SIZES[size]
    request = urllib.request.Request(target.base_url + path, headers={CLIENT_HEADER: "check-1"})
    try:
        resp = urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback only
    except (OSError, urllib.error.URLError) as exc:  # HTTPError (a 4xx/5xx) is a URLError
        raise StartError(f"{target.name}: GET {path} failed: {exc}") from None
    with resp:
        body = resp.read()
        problems = []
        if resp.status != 200:
            problems.append(f"status {resp.status}")
        if len(body) != length or b'"role"' not in body:
            problems.append(f"a {len(body)}-byte body, expected the {length}-byte JSON file")
        if not resp.headers.get("Content-Type", "").startswith("application/json"):
            problems.append(f"Content-Type {resp.headers.get('Content-Type')!r}")
        problems += [f"no {h} header" for h in target.expect_headers if h not in resp.headers]
        problems += [
            f"an unexpected {h} header" for h in target.refuse_headers if h in resp.headers
        ]
    if problems:
        raise StartError(f"{target.name}: GET {path} answered with {', '.join(problems)}")


# --- measuring --------------------------------------------------------------------------------


def measure(args: argparse.Namespace, fronts: list[Target]) -> list[dict[str, Any]]:
    loads = [(args.connections, args.duration), (1, args.low_duration)]
    total = args.rounds * len(args.sizes) * len(fronts) * len(loads)
    print(f"\nwarming up, then {total} wrk runs ({args.rounds} rounds)", flush=True)
    for size in args.sizes:
        for target in fronts:
            wrk.run(target.base_url + SIZES[size][0], args.connections, "2s", CLIENT_HEADER)
    runs: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for size in args.sizes:
            for conns, duration in loads:
                for target in fronts:
                    result = wrk.run(
                        target.base_url + SIZES[size][0], conns, duration, CLIENT_HEADER
                    )
                    runs.append(
                        {
                            "round": rnd,
                            "target": target.name,
                            "size": size,
                            "connections": conns,
                            **result.as_dict(),
                            "load_average": os.getloadavg()[0],  # noise from other work
                        }
                    )
                    warn = f"  {result.errors} errors!" if result.errors else ""
                    print(
                        f"  round {rnd}  {size:>5}  c{conns:<3} {target.name:<17}"
                        f" {result.rps:>10,.0f} req/s  p50 {report.ms(result.p50_ms):>9}"
                        f"  p99 {report.ms(result.p99_ms):>9}{warn}",
                        flush=True,
                    )
    return runs


def peak_rss(fronts: list[Target]) -> dict[str, dict[str, int]]:
    out = {}
    for target in fronts:
        pid = target.pid
        if pid is not None and target.worker:
            pid = next(iter(targets.children(pid)), None)
        if pid is not None:
            out[target.name] = targets.memory_kb(pid)
    return out


def print_report(
    args: argparse.Namespace,
    fronts: list[Target],
    runs: list[dict[str, Any]],
    memory: dict[str, dict[str, int]],
    info: dict[str, Any],
) -> list[str]:
    cells = report.aggregate(runs)
    names = [t.name for t in fronts]
    hwm = {name: mem["VmHWM"] for name, mem in memory.items() if "VmHWM" in mem}
    lines = [
        f"## Results: {info['cpus']} CPU(s) {info['cpu_model']}, {info['nginx']}, "
        f"{args.rounds} round(s) of {args.duration} (busy) / {args.low_duration} (1 conn), "
        f"load average {info['load_average_at_start'][0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end",
        "",
        *report.results_table(cells, names, args.sizes, [args.connections, 1], hwm),
        "",
        *report.ratios_table(cells, names[1:], args.sizes, args.connections),
    ]
    print("\n" + "\n".join(lines))
    return lines


def save(
    args: argparse.Namespace,
    info: dict[str, Any],
    runs: list[dict[str, Any]],
    memory: dict[str, dict[str, int]],
    table: list[str],
) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}.json"
    data = {
        "machine": info,
        "args": {k: v for k, v in vars(args).items() if k != "keep"},
        "runs": runs,
        "memory_kb": memory,
        "table": table,
    }
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C, through the finally below


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
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
        fronts = start_targets(procs, tools, args.variants)
        for size in args.sizes:
            for target in fronts:
                check(target, size)
        runs = measure(args, fronts)
        memory = peak_rss(fronts)
        table = print_report(args, fronts, runs, memory, info)
        print(f"\nraw numbers: {save(args, info, runs, memory, table).relative_to(REPO)}")
        return 0
    except StartError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except wrk.WrkError as exc:
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
