"""Files in the state directory: private modes, and setting a bad file aside.

Every file Switchback keeps there (``traffic.json``, its temporary file, the ledger and its
``-wal`` and ``-shm`` files) is mode 0600 whatever the umask, because they name clients and
the traffic split; a state directory Switchback creates itself is 0700 (one that exists
already is left as the operator made it).

A file that cannot be used is never deleted: it is renamed beside itself with a label and
the UTC time (``ledger.sqlite3.corrupt-20260615T150640Z``), with its companion files under the
same new name (``...-wal``), so that it can still be opened and read.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence

PRIVATE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: str) -> None:
    """Create ``path`` (and its parents) when missing; the last level is made 0700."""
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)


def make_private(fd: int) -> None:
    """An open file to mode 0600: the umask only takes bits away, and may take too many."""
    os.fchmod(fd, PRIVATE)


def ensure_private_file(path: str, companions: Iterable[str] = ()) -> None:
    """Create ``path`` empty when missing, and set it and the existing ``path + suffix``
    companions to 0600 (a file written by an older version may be more open). A file owned by
    another user keeps its mode: only its owner may change it, and it may still be writable."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE)
    try:
        with contextlib.suppress(PermissionError):
            make_private(fd)
    finally:
        os.close(fd)
    for suffix in companions:
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.chmod(path + suffix, PRIVATE)


def stamp(now: float) -> str:
    """``20260615T150640Z``: the UTC time in a file name (sorts in time order)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def aside_name(
    path: str, label: str, now: float, taken: Iterable[str], suffixes: Sequence[str] = ("",)
) -> str:
    """The name ``path`` is set aside under: ``<path>.<label>-<UTC time>``, with ``.1``,
    ``.2``, ... appended while that name plus one of ``suffixes`` is in ``taken``. Pure."""
    base = f"{path}.{label}-{stamp(now)}"
    used = set(taken)
    name, n = base, 0
    while any(name + suffix in used for suffix in suffixes):
        n += 1
        name = f"{base}.{n}"
    return name


def set_aside(
    path: str, label: str, now: float, companions: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """Rename ``path`` and its existing companions (``path + suffix``) to one new name that
    none of them has yet; returns the (old, new) pairs renamed, ``path``'s first."""
    folder = os.path.dirname(path) or "."
    suffixes = ("", *companions)
    taken = (os.path.join(folder, entry) for entry in os.listdir(folder))
    new = aside_name(path, label, now, taken, suffixes)
    moved = []
    for suffix in suffixes:
        if suffix and not os.path.exists(path + suffix):
            continue
        os.rename(path + suffix, new + suffix)
        moved.append((path + suffix, new + suffix))
    return moved


def remove_leftovers(folder: str, prefix: str, suffix: str) -> list[str]:
    """Delete the files ``<prefix>*<suffix>`` in ``folder`` (temporary files an interrupted
    save left behind); returns their paths. What cannot be listed or removed (a missing or
    read-only folder) stays: such a file is never read, only untidy."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    removed = []
    for name in names:
        if name.startswith(prefix) and name.endswith(suffix):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed.append(os.path.join(folder, name))
    return removed
