"""What /proc says about a process and about the machine: CPU time, memory, children.

``/proc/<pid>/stat`` gives a process's user and system time (fields 14 and 15, in clock
ticks) summed over all its threads, live and exited; ``/proc/stat``'s first line gives the
whole machine's, per kind, summed over every CPU. The parsers are pure, for the tests; the
readers return None (or nothing) when the process is gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = 1.0 / os.sysconf("SC_CLK_TCK")  # seconds per clock tick (usually 10 ms)


def parse_pid_times(text: str) -> tuple[float, float]:
    """(utime, stime) in seconds from the text of /proc/<pid>/stat: the time in user space,
    and in the kernel on the process's behalf (system calls, and the softirq work charged to
    it).

    The second field is the command name in parentheses and may itself hold spaces or
    parentheses, so fields are counted from the last ``)``.
    """
    fields = text.rpartition(")")[2].split()
    # fields[0] is field 3 (state): utime (14) and stime (15) are fields[11] and fields[12].
    return int(fields[11]) * TICK, int(fields[12]) * TICK


def cpu_times(pid: int) -> tuple[float, float] | None:
    """(user, system) seconds of a process, every thread summed; None when it is gone."""
    try:
        return parse_pid_times(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, IndexError, ValueError):
        return None


@dataclass(frozen=True)
class MachineTimes:
    """Seconds spent by all CPUs together since boot, from /proc/stat's ``cpu`` line."""

    busy: float  # user + nice + system: processes, ours and everybody else's
    interrupts: float  # irq + softirq (loopback networking lands partly here)
    steal: float  # time the hypervisor gave to other guests
    idle: float  # idle + iowait


def parse_machine_stat(text: str) -> MachineTimes:
    line = next(line for line in text.splitlines() if line.startswith("cpu "))
    v = [int(n) * TICK for n in line.split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = v
    return MachineTimes(user + nice + system, irq + softirq, steal, idle + iowait)


def machine_times() -> MachineTimes:
    return parse_machine_stat(Path("/proc/stat").read_text())


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of ``pid`` in KiB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out
