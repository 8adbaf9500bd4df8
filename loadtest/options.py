"""bench.py's command line: the full profile (`make bench`, about 13 minutes) and ``--quick``.

An option given on the command line wins over its profile's value.
"""

from __future__ import annotations

import argparse
import re

from bodies import SIZES
from configs import VARIANTS

PROFILES = {  # rounds, busy and one-connection durations, warm-up, memory run
    "full": {"rounds": 5, "duration": "6s", "low_duration": "3s", "warmup": "2s", "memory": "4s"},
    "quick": {"rounds": 3, "duration": "2s", "low_duration": "1s", "warmup": "1s", "memory": "2s"},
}
_DURATION = re.compile(r"(\d+)([smh]?)")


def seconds(duration: str) -> int:
    """wrk's duration ("6s", "2m", "10") in seconds."""
    found = _DURATION.fullmatch(duration)
    if found is None:
        raise ValueError(f"{duration!r} is not like 6s")
    return int(found.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[found.group(2)]


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="loadtest/bench.py",
        description="CPU per request, throughput, latency and memory: "
        "direct vs nginx vs Switchback (wrk).",
    )
    full, quick = PROFILES["full"], PROFILES["quick"]
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{quick['rounds']} rounds of {quick['duration']} / {quick['low_duration']} runs "
        "(a few minutes) instead of the full profile",
    )
    p.add_argument("--rounds", type=int, help=f"alternating rounds ({full['rounds']})")
    p.add_argument("--duration", help=f"each busy wrk run ({full['duration']})")
    p.add_argument("--low-duration", help=f"each one-connection run ({full['low_duration']})")
    p.add_argument("--connections", type=int, default=32, help="busy runs, every target (32)")
    p.add_argument(
        "--wide-connections",
        default="200",
        help="further busy runs for nginx and plain Switchback only: a list (200), or none",
    )
    p.add_argument(
        "--memory-connections",
        type=int,
        default=50,
        help="after the rounds, one run per front at the largest size with this many "
        "connections, before peak RSS is read (50; 0 skips it)",
    )
    p.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"Switchback variants ({','.join(VARIANTS)}), or none",
    )
    p.add_argument("--sizes", default=",".join(SIZES), help=f"body sizes ({','.join(SIZES)})")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (configs, logs)")
    args = p.parse_args(argv)
    profile = PROFILES["quick" if args.quick else "full"]
    for name, value in profile.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    args.variants = (
        [] if args.variants == "none" else _csv(p, "--variants", args.variants, tuple(VARIANTS))
    )
    args.sizes = _csv(p, "--sizes", args.sizes, tuple(SIZES))
    args.wide_connections = (
        []
        if args.wide_connections == "none"
        else [
            _count(p, "--wide-connections", n)
            for n in _csv(p, "--wide-connections", args.wide_connections)
        ]
    )
    for name in ("duration", "low_duration"):
        try:
            seconds(getattr(args, name))
        except ValueError as exc:
            p.error(f"--{name.replace('_', '-')}: {exc}")
    if args.rounds < 1 or args.connections < 1 or args.memory_connections < 0:
        p.error("--rounds and --connections must be at least 1, --memory-connections 0 or more")
    return args


def _csv(
    p: argparse.ArgumentParser, flag: str, text: str, known: tuple[str, ...] | None = None
) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    for item in items:
        if known is not None and item not in known:
            p.error(f"{flag}: {item!r} is not one of {', '.join(known)}")
    return items


def _count(p: argparse.ArgumentParser, flag: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        p.error(f"{flag}: {text!r} is not a number of connections")
    return int(text)
