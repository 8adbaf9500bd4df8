"""One measured wrk run: what wrk saw, and what the front, the upstream and the machine spent.

Around each run the front's and the upstream's utime + stime are read from /proc, wrk's from
this process's RUSAGE_CHILDREN (wrk is the only child that exits meanwhile), and the whole
machine's from /proc/stat. The front's CPU divided by the requests wrk completed is its CPU per
request, kept also as its user and system parts (where a cost grows: our code, or the
kernel's work on our sockets). The requests the front itself counted (answered.py) are read
just outside that window and kept beside wrk's count: they agree within the requests in flight
when wrk stops (at most one per connection), and a larger gap means a number is not what it
seems.

What the machine spent beyond the front, the upstream and wrk is other work (other people's
tests, our idle servers): the noise the run had to share the CPUs with.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass
from typing import Any

import answered
import procstat
import wrk
from configs import CLIENT_HEADER
from procstat import MachineTimes
from targets import Target


@dataclass(frozen=True)
class Reading:
    at: float  # time.monotonic()
    front: float  # seconds of CPU, user + system
    upstream: float
    wrk: float
    machine: MachineTimes
    front_system: float  # the system part of ``front``


def _cpu(pid: int, name: str) -> tuple[float, float]:
    times = procstat.cpu_times(pid)
    if times is None:
        raise wrk.WrkError(f"{name}: process {pid} is gone")
    return times


def read(front: Target, upstream: Target) -> Reading:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = _cpu(front.pid, front.name)
    return Reading(
        at=time.monotonic(),
        front=user + system,
        upstream=sum(_cpu(upstream.pid, "the upstream")),
        wrk=usage.ru_utime + usage.ru_stime,
        machine=procstat.machine_times(),
        front_system=system,
    )


def spent(
    before: Reading, after: Reading, requests: int, front_is_upstream: bool
) -> dict[str, float]:
    """What a run cost, from the readings around it and wrk's request count."""
    wall = after.at - before.at
    front = after.front - before.front
    system = after.front_system - before.front_system
    upstream = after.upstream - before.upstream
    wrk_cpu = after.wrk - before.wrk
    ours = front + wrk_cpu + (0.0 if front_is_upstream else upstream)
    # With tick accounting and no CONFIG_IRQ_TIME_ACCOUNTING (this machine's kernel), a tick
    # spent in softirq (loopback networking) is charged both to the task it interrupted and to
    # "softirq" in /proc/stat: the machine's total is busy + interrupts, and our processes'
    # times hold their share. Where the kernel accounts IRQ time apart, other_cores overstates
    # other work by our own interrupt time.
    machine = (after.machine.busy + after.machine.interrupts) - (
        before.machine.busy + before.machine.interrupts
    )
    return {
        "wall_s": wall,
        "front_cpu_s": front,
        "upstream_cpu_s": upstream,
        "wrk_cpu_s": wrk_cpu,
        "front_system_s": system,
        "cpu_us": front / requests * 1e6 if requests else float("nan"),
        "user_us": (front - system) / requests * 1e6 if requests else float("nan"),
        "system_us": system / requests * 1e6 if requests else float("nan"),
        "upstream_cpu_us": upstream / requests * 1e6 if requests else float("nan"),
        "front_cores": front / wall,
        "other_cores": max(0.0, machine - ours) / wall,
        "interrupt_cores": (after.machine.interrupts - before.machine.interrupts) / wall,
        "steal_cores": (after.machine.steal - before.machine.steal) / wall,
    }


def settle(upstream: Target, timeout: float = 5.0) -> bool:
    """Wait until the upstream has no request in progress: what a front still forwards after
    the previous run would land in this run's window. False if it is still busy at the end."""
    deadline = time.monotonic() + timeout
    while answered.parse_stub_busy(answered.fetch(upstream.count_url)) > 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run(
    front: Target, upstream: Target, path: str, connections: int, duration: str
) -> dict[str, Any]:
    """One wrk run against ``front``, measured; the raw row bench.py saves."""
    settled = settle(upstream)
    count_before = answered.count(front.kind, front.count_url)
    before = read(front, upstream)
    result = wrk.run(front.base_url + path, connections, duration, CLIENT_HEADER, front.wrk_args)
    after = read(front, upstream)
    count_after = answered.count(front.kind, front.count_url)
    row = {
        "connections": connections,
        **result.as_dict(),
        **spent(before, after, result.requests, front.pid == upstream.pid),
        "answered": answered.between(front.kind, count_before, count_after),
        "settled": settled,  # the upstream was idle when the run began
    }
    row["count_ok"] = count_ok(row)
    return row


def count_ok(row: dict[str, Any]) -> bool:
    """Whether the front's own count agrees with wrk's, within the requests left in flight."""
    gap = int(row["answered"]) - int(row["requests"])
    return 0 <= gap <= int(row["connections"])
