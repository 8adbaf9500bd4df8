"""Run ``wrk --latency`` once and read its report into numbers.

wrk prints (the parts used here):

      Latency Distribution
         50%  612.00us
         99%    2.31ms
      412345 requests in 10.00s, 431.12MB read
      Non-2xx or 3xx responses: 12
      Socket errors: connect 0, read 3, write 0, timeout 0
    Requests/sec:  41234.50

Times come as us, ms, s, m or h; everything is converted to milliseconds.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LUA = Path(__file__).with_name("clients.lua")
_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.M)
_PCT = re.compile(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.M)
_TOTAL = re.compile(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.M)
_NON2XX = re.compile(r"^\s+Non-2xx or 3xx responses: (\d+)\s*$", re.M)
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


class WrkError(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def to_ms(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS_MS[unit]


def parse(output: str) -> WrkResult:
    """wrk's ``--latency`` report as numbers; ``WrkError`` names what is missing."""
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    pcts = {m.group(1): to_ms(m.group(2), m.group(3)) for m in _PCT.finditer(output)}
    missing = [
        what
        for what, found in (
            ("Requests/sec", rps),
            ("requests in", total),
            ("50%", "50" in pcts),
            ("99%", "99" in pcts),
        )
        if not found
    ]
    if missing or rps is None or total is None:
        raise WrkError(f"wrk output lacks {', '.join(missing)}:\n{output.strip()}")
    non_2xx = _NON2XX.search(output)
    sockets = _SOCKET.search(output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=to_ms(total.group(2), total.group(3)) / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=pcts["50"],
        p99_ms=pcts["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def run(
    url: str, connections: int, duration: str, header: str, extra: tuple[str, ...] = ()
) -> WrkResult:
    """One wrk run with one thread; every request carries ``header`` from a rotating set, and
    ``extra`` (a header name and its value) when given."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}", "--latency", "-s", str(LUA)]
    argv += [url, "--", header, *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise WrkError(f"{' '.join(argv)} exited with {proc.returncode}:\n{proc.stderr.strip()}")
    return parse(proc.stdout)
