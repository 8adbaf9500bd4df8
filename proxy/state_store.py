"""The traffic split and the rollout, kept in ``<state_dir>/traffic.json`` across restarts.

A save writes a temporary file in the same directory, fsyncs it, renames it over
``traffic.json`` (atomic on POSIX) and fsyncs the directory, so after a crash the file is either
the old state or the new one, never a mixture. Saves happen on admin actions and rollout
transitions only, never per request, so they are synchronous.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import msgspec

from proxy.errors import ConfigError
from proxy.rollout import Rollout

FILENAME = "traffic.json"
VERSION = 1


class PersistedState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = VERSION
    stable: str
    candidate: str
    weights: dict[str, float]
    rollout: Rollout | None = None
    saved_at: float  # wall-clock seconds
    # Where the split came from: "config" (the file's, untouched since) or "state" (set by an
    # operator or a rollout). A split still from config yields to an edited file at start.
    source: str = "state"
    out_of_service: str | None = None  # a release a rollback took out (pins included)


def save_state(state_dir: str, state: PersistedState) -> None:
    """Atomically replace ``traffic.json`` in ``state_dir`` (created when missing)."""
    os.makedirs(state_dir, exist_ok=True)
    data = msgspec.json.format(msgspec.json.encode(state), indent=2) + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{FILENAME}.", suffix=".tmp", dir=state_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(state_dir, FILENAME))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(state_dir)


def load_state(state_dir: str) -> PersistedState | None:
    """The saved state, or None when there is none. Unreadable or invalid: ``ConfigError``."""
    path = os.path.join(state_dir, FILENAME)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the saved state: {exc.strerror or exc}") from None
    try:
        state = msgspec.json.decode(data, type=PersistedState)
    except msgspec.DecodeError as exc:  # ValidationError is a subclass
        raise ConfigError(f"{path}: invalid saved state: {exc}") from None
    if state.version != VERSION:
        raise ConfigError(f"{path}: saved state version {state.version} is not {VERSION}")
    return state


def _fsync_dir(path: str) -> None:
    """Make the rename itself durable. Not every platform can open a directory; skip there."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
