"""The traffic split and the rollout, kept in ``<state_dir>/traffic.json`` across restarts.

Writing: a temporary file (mode 0600) in the same directory, fsync'ed, renamed over
``traffic.json`` (atomic on POSIX), then the directory fsync'ed: after a crash the file is the
old state or the new one, never a mixture. A temporary file a crash left behind is never read,
and is removed at start. Saves happen on admin actions and rollout transitions (and their
retries), never per request, so they are synchronous. A failed save raises ``OSError`` and
leaves the previous file whole; what to do then is the caller's decision.

Reading: a file that exists but cannot be used (unreadable, empty, cut short, damaged, of
another shape or version, naming other releases, weights that do not add up) is a
``StateError``, and start-up refuses: falling back to the config file's split could undo a
rollback. ``refusal`` is the message that says so and gives the operator's two commands,
``switchback state show`` and ``switchback state reset`` (which sets the file aside).
"""

from __future__ import annotations

import contextlib
import math
import os
import shlex
import tempfile
from collections.abc import Collection
from typing import Literal

import msgspec

from proxy import files
from proxy.core.rollout import Rollout
from proxy.errors import StateError

FILENAME = "traffic.json"
VERSION = 1
_TEMP_PREFIX, _TEMP_SUFFIX = f".{FILENAME}.", ".tmp"
Source = Literal["config", "state"]


class PersistedState(msgspec.Struct, frozen=True, kw_only=True):
    version: int = VERSION
    stable: str
    candidate: str
    weights: dict[str, float]
    rollout: Rollout | None = None
    saved_at: float  # wall-clock seconds
    # Where the split came from: "config" (the file's, untouched since) or "state" (set by an
    # operator or a rollout). A split still from config yields to an edited file at start.
    source: Source = "state"
    out_of_service: str | None = None  # a release a rollback took out (pins included)


class _Header(msgspec.Struct):
    """Read first, so that another version is named as such rather than as a bad shape."""

    version: int = VERSION


def state_path(state_dir: str) -> str:
    return os.path.join(state_dir, FILENAME)


def save_state(state_dir: str, state: PersistedState) -> None:
    """Atomically replace ``traffic.json`` in ``state_dir`` (created 0700 when missing)."""
    files.private_dir(state_dir)
    data = msgspec.json.format(msgspec.json.encode(state), indent=2) + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=state_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            files.make_private(f.fileno())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, state_path(state_dir))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(state_dir)


def load_state(state_dir: str) -> PersistedState | None:
    """The saved state, or None when there is none; a file that cannot be used is a
    ``StateError`` saying what is wrong with it."""
    path = state_path(state_dir)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(path, f"unreadable: {exc.strerror or exc}") from None
    if not data.strip():
        raise StateError(path, "the file is empty (a write cut short, or a full disk?)")
    try:
        version = msgspec.json.decode(data, type=_Header).version
        if version != VERSION:
            raise StateError(path, f"format version {version}; this Switchback reads {VERSION}")
        return msgspec.json.decode(data, type=PersistedState)
    except msgspec.ValidationError as exc:
        raise StateError(path, f"not a saved traffic state ({exc})") from None
    except msgspec.DecodeError as exc:
        raise StateError(path, f"not valid JSON, cut short or damaged ({exc})") from None


def follows_config(state: PersistedState) -> bool:
    """Whether a saved state is only the config file's split, untouched since it was taken
    (no rollout under way or over): then the file, perhaps edited meanwhile, is in force."""
    return state.source == "config" and (state.rollout is None or state.rollout.state == "idle")


def check_state(state: PersistedState, releases: Collection[str]) -> str | None:
    """What makes a well-formed saved state unusable with these releases, or None. Pure."""
    known = set(releases)
    if state.stable == state.candidate or {state.stable, state.candidate, *state.weights} != known:
        return (
            f"it names the stable release {state.stable}, the candidate {state.candidate} and "
            f"weights for {', '.join(state.weights) or 'none'}; the config file's releases "
            f"are {', '.join(sorted(known))}"
        )
    if set(state.weights) != known:
        missing = ", ".join(sorted(known - set(state.weights)))
        return f"weights: none for {missing}"
    for name, weight in state.weights.items():
        if not (math.isfinite(weight) and 0.0 <= weight <= 100.0):
            return f"weights.{name}: {weight} is not a percentage (0-100)"
    if abs(sum(state.weights.values()) - 100.0) > 1e-6:
        return f"weights: {sum(state.weights.values()):g} in all, not 100"
    if state.out_of_service is not None and state.out_of_service not in releases:
        return f"out_of_service: {state.out_of_service} is not a release"
    rollout = state.rollout
    if rollout is not None and not 0 <= rollout.step_index < len(rollout.steps):
        return f"rollout.step_index: {rollout.step_index} is not a step of {list(rollout.steps)}"
    return None


def refusal(error: StateError, config_file: str) -> str:
    """The one-paragraph message ``switchback run`` exits with when the state is unusable."""
    config = shlex.quote(config_file)
    return (
        f"cannot start: saved traffic state {error}. Switchback does not fall back to the "
        f"split in {config_file}, which could undo a rollback. See what is saved with "
        f"`switchback state show --config {config}`; to start from the config file's split, "
        f"set the file aside (it is renamed, never deleted) with "
        f"`switchback state reset --config {config}`, then start again."
    )


def set_aside(state_dir: str, label: str, now: float) -> str:
    """Rename ``traffic.json`` to ``traffic.json.<label>-<UTC time>``; returns the new path."""
    ((_, new),) = files.set_aside(state_path(state_dir), label, now)
    return new


def remove_temp_files(state_dir: str) -> list[str]:
    """Delete the temporary files interrupted saves left behind; returns their paths."""
    return files.remove_leftovers(state_dir, _TEMP_PREFIX, _TEMP_SUFFIX)


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
