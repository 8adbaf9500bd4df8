"""What a process holds, read from /proc: open file descriptors, its TCP connections (the
sockets among its descriptors that are not listening), resident memory."""

from __future__ import annotations

import os
import re
from pathlib import Path

_LISTEN = "0A"  # the TCP state column in /proc/net/tcp
_STATES = {"01": "ESTABLISHED", "04": "FIN_WAIT1", "05": "FIN_WAIT2", "07": "CLOSE",
           "08": "CLOSE_WAIT", "09": "LAST_ACK", "0B": "CLOSING"}  # fmt: skip


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_kinds(pid: int) -> dict[str, int]:
    """Open descriptors by kind: socket, pipe, anon_inode, file."""
    kinds: dict[str, int] = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:  # closed while we looked
            continue
        kind = target.split(":", 1)[0] if ":" in target and not target.startswith("/") else "file"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def sockets(pid: int) -> list[tuple[str, int, int]]:
    """(TCP state, local port, remote port) of each TCP socket of ``pid`` but its listeners."""
    inodes = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if cols[9] in inodes and cols[3] != _LISTEN:
                local, remote = (int(c.rsplit(":", 1)[1], 16) for c in cols[1:3])
                found.append((_STATES.get(cols[3], cols[3]), local, remote))
    return found


def connections(pid: int) -> int:
    return len(sockets(pid))


def _status_kib(pid: int, key: str) -> int:
    found = re.search(rf"^{key}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    assert found is not None, key
    return int(found[1]) * 1024


def rss(pid: int) -> int:
    return _status_kib(pid, "VmRSS")


def peak_rss(pid: int) -> int:
    return _status_kib(pid, "VmHWM")
