"""``switchback state show`` and ``switchback state reset``: look at the saved traffic state,
and set aside one that stops start-up, so that the next start takes the config file's split.

``proxy.cli.commands`` parses the arguments and imports this module only to run them. Both read the
config file only to find ``state_dir``; neither talks to a running Switchback.
``reset`` renames ``traffic.json`` (never deletes it): ``traffic.json.unusable-<UTC time>``
for a file start-up refuses, ``traffic.json.reset-<UTC time>`` for a usable one, which it
sets aside only with ``--force`` (that would undo a rollback, or any other saved change).
Run it while Switchback is stopped: a running one writes its state again at its next change.

``describe_state`` and ``describe_split`` are pure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import time
from collections.abc import Mapping

import msgspec
import orjson

from proxy.cli.commands import CliError
from proxy.config.load import load_config
from proxy.errors import StateError
from proxy.schema import Config
from proxy.traffic.state import (
    PersistedState,
    check_state,
    follows_config,
    load_state,
    set_aside,
    state_path,
)


def _read(config: Config) -> tuple[PersistedState | None, str | None]:
    """The saved state (None when absent) and why start-up would refuse it (None: it would
    not)."""
    try:
        saved = load_state(config.state_dir)
    except StateError as exc:
        return None, exc.problem
    if saved is None or follows_config(saved):
        return saved, None
    return saved, check_state(saved, config.releases)


def show(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    path = state_path(config.state_dir)
    saved, problem = _read(config)
    if saved is None and problem is None:
        print(f"{path}: no saved state; the next start takes {describe_split(config)}")
        return 0
    if saved is not None:
        if args.json:
            print(orjson.dumps(msgspec.to_builtins(saved), option=orjson.OPT_INDENT_2).decode())
        else:
            print(describe_state(path, saved))
    if problem is not None:
        raise CliError(
            f"{path}: {problem}. Switchback will not start with it; "
            f"`switchback state reset --config {shlex.quote(args.config)}` sets it aside."
        )
    return 0


def reset(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    path = state_path(config.state_dir)
    saved, problem = _read(config)
    if saved is None and problem is None:
        print(f"{path}: no saved state, nothing to reset")
        return 0
    if problem is None and not args.force:
        raise CliError(
            f"{path} is a usable saved state ({_brief(saved)}); setting it aside makes the next "
            f"start take {describe_split(config)}, which could undo a rollback. "
            "Give --force to set it aside anyway."
        )
    label = "unusable" if problem is not None else "reset"
    try:
        new = set_aside(config.state_dir, label, time.time())
    except OSError as exc:
        raise CliError(f"{path}: cannot set it aside: {exc.strerror or exc}") from None
    print(f"{path}: set aside as {new}\nthe next start takes {describe_split(config)}")
    return 0


def describe_split(config: Config) -> str:
    """``the split in config/dev.yaml: stable blue, blue 100%, green 0%``."""
    weights = _fmt_weights(config.traffic.weights)
    return f"the split in {config.source}: stable {config.traffic.stable}, {weights}"


def describe_state(path: str, state: PersistedState) -> str:
    """A saved state for a terminal, one field a line."""
    saved_at = dt.datetime.fromtimestamp(state.saved_at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = [
        ("stable", state.stable),
        ("candidate", state.candidate),
        ("weights", _fmt_weights(state.weights)),
        ("rollout", _fmt_rollout(state)),
        ("out of service", state.out_of_service or "-"),
        ("source", state.source),
    ]
    width = max(len(name) for name, _ in rows) + 3  # the colon, and two spaces
    lines = [f"{path} (saved {saved_at})"]
    lines += [f"  {name + ':':<{width}}{value}" for name, value in rows]
    return "\n".join(lines)


def _brief(state: PersistedState | None) -> str:
    if state is None:
        return "none"
    return f"stable {state.stable}, {_fmt_weights(state.weights)}, rollout {_fmt_rollout(state)}"


def _fmt_rollout(state: PersistedState) -> str:
    rollout = state.rollout
    if rollout is None:
        return "idle"
    text: str = rollout.state
    if rollout.state in ("ramping", "paused", "awaiting_promotion"):
        text += f", step {rollout.step_index + 1} of {len(rollout.steps)}"
    if rollout.reason:
        text += f" ({rollout.reason})"
    return text


def _fmt_weights(weights: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {weight:g}%" for name, weight in weights.items())
