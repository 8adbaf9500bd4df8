"""How the admin API's answers read on a terminal: the status table, a rollout in one line,
the answer to a change. Shared by the CLI and the demo; pure functions over the JSON answers.
"""

from __future__ import annotations

from typing import Any

from proxy.core.enforcement_report import enforcement_lines
from proxy.core.report import columns


def format_status(status: dict[str, Any]) -> str:
    candidate = status.get("candidate")
    roles = {status.get("stable"): "stable", candidate: "candidate"}
    rows = [
        [
            str(name),
            roles.get(name, ""),
            _fmt(rel.get("weight"), "g", "%"),
            _fmt(rel.get("in_flight"), "g"),
            _fmt(rel.get("rate_per_s"), ".1f"),
            _fmt(rel.get("error_rate"), ".2f", "%", scale=100),
            _fmt(rel.get("p99_ms"), ".1f", " ms"),
        ]
        for name, rel in (status.get("releases") or {}).items()
    ]
    header = ["RELEASE", "ROLE", "WEIGHT", "IN-FLIGHT", "REQ/S", "5XX RATE", "P99"]
    lines = columns([header, *rows], right=frozenset({2, 3, 4, 5, 6}))
    if isinstance(status.get("rollout"), dict):
        lines.append(f"rollout:       {describe_rollout(status['rollout'], candidate)}")
    source, config_file = status.get("source"), status.get("config_file")
    if source == "config":
        lines.append(f"traffic from:  config ({config_file or 'file unknown'})")
    elif source == "state":
        over = f" override {config_file}" if config_file else ""
        lines.append(f"traffic from:  state (saved admin changes{over})")
    elif source:
        lines.append(f"traffic from:  {source}")
    lines += _not_saved(status)
    if isinstance(status.get("uptime_seconds"), int | float):
        lines.append(f"uptime:        {_duration(status['uptime_seconds'])}")
    lines += enforcement_lines(status.get("enforcement"))
    return "\n".join(lines)


def describe_rollout(rollout: dict[str, Any], candidate: Any) -> str:
    """``ramping, step 2 of 6 (green at 5%, 60 s per step)``; ``step`` counts from 0."""
    state = str(rollout.get("state") or "unknown")
    text = state
    step, steps = rollout.get("step"), rollout.get("steps")
    if state in ("ramping", "paused", "awaiting_promotion"):
        if isinstance(step, int) and isinstance(steps, list) and 0 <= step < len(steps):
            text += f", step {step + 1} of {len(steps)}"
        detail = f"{candidate} at {_fmt(rollout.get('candidate_weight'), 'g', '%')}"
        if isinstance(rollout.get("step_seconds"), int | float):
            detail += f", {rollout['step_seconds']:g} s per step"
        text += f" ({detail})"
    if rollout.get("reason"):
        text += f"; reason: {rollout['reason']}"
    return text


def format_change(title: str, answer: Any) -> str:
    """What a write command prints: its title, then the weights and rollout it left."""
    lines = [title]
    if isinstance(answer, dict):
        weights = answer.get("weights")
        if isinstance(weights, dict) and weights:
            stable = answer.get("stable")
            ordered = sorted(weights.items(), key=lambda item: (item[0] != stable, item[0]))
            text = ", ".join(
                f"{name} {_fmt(w, 'g', '%')}{' (stable)' if name == stable else ''}"
                for name, w in ordered
            )
            lines.append(f"weights:  {text}")
        if isinstance(answer.get("rollout"), dict):
            candidate = answer.get("candidate")
            lines.append(f"rollout:  {describe_rollout(answer['rollout'], candidate)}")
        lines += _not_saved(answer)
    return "\n".join(lines)


def _not_saved(answer: dict[str, Any]) -> list[str]:
    """A warning line when the server says the state in force is not on disk."""
    if answer.get("persisted") is not False:
        return []
    error = answer.get("persist_error") or "unknown error"
    where = answer.get("state_file") or "the state directory"
    return [
        f"warning: not saved to {where}: {error}; in force now, but a restart would bring back "
        "the last saved state (retried every second)"
    ]


def _fmt(value: Any, spec: str, suffix: str = "", scale: float = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "-"
    return format(value * scale, spec) + suffix


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, h, m = s // 86400, s % 86400 // 3600, s % 3600 // 60
    if d:
        return f"{d}d {h}h"
    if h:
        return f"{h}h {m}m"
    return f"{m}m {s % 60}s" if m else f"{s}s"
