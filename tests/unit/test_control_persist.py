"""Traffic control when the state directory fails: a change is in force at once whether or
not it reaches the disk, the answer says so, the failure is counted, and a retry saves the
state in force once the disk takes it; a saved state that cannot be used stops start-up.

Real files throughout: the state directory is replaced by a regular file, which makes every
save fail (even as root, where a read-only mode would not), and then put back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from proxy.config.load import parse_config
from proxy.core.window import Windows
from proxy.errors import StateError
from proxy.traffic.control import RETRY_SECONDS, TrafficControl
from proxy.traffic.metrics import TrafficMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def control_for(state_dir: Path, clock: Clock) -> tuple[TrafficControl, CollectorRegistry]:
    text = f"""
state_dir: {state_dir}
releases: {{blue: {{url: "http://127.0.0.1:9001"}}, green: {{url: "http://127.0.0.1:9002"}}}}
traffic: {{stable: blue, weights: {{blue: 100, green: 0}}}}
"""
    registry = CollectorRegistry()
    config = parse_config(text, "test.yaml", {})
    metrics = TrafficMetrics(registry)
    return TrafficControl(config, metrics, Windows(), clock, lambda release: None), registry


def value(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def break_dir(state_dir: Path) -> Path:
    """Move the directory away and put a file in its place; returns where it went."""
    moved = state_dir.with_name(state_dir.name + ".away")
    state_dir.rename(moved)
    state_dir.write_text("in the way")
    return moved


def mend_dir(state_dir: Path, moved: Path) -> None:
    state_dir.unlink()
    moved.rename(state_dir)


def saved(state_dir: Path) -> dict[str, object]:
    data = json.loads((state_dir / "traffic.json").read_text())
    assert isinstance(data, dict)
    return data


def test_a_failed_save_neither_raises_nor_undoes_and_is_retried(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    clock = Clock()
    control, registry = control_for(state_dir, clock)
    control.restore()
    control.set_weights({"green": 30})
    assert control.summary()["persisted"] is True
    assert value(registry, "switchback_state_write_failures_total") == 0
    assert value(registry, "switchback_state_persisted") == 1

    moved = break_dir(state_dir)
    answer = control.rollback("bad deploy")
    assert control.traffic.weights == {"blue": 100.0, "green": 0.0}  # in force at once
    assert control.traffic.out_of_service == "green"
    assert answer["rollout"]["state"] == "rolled_back"
    assert answer["persisted"] is False
    assert "Not a directory" in answer["persist_error"] or "exists" in answer["persist_error"]
    assert answer["state_file"] == str(state_dir / "traffic.json")
    assert value(registry, "switchback_state_write_failures_total") == 1
    assert value(registry, "switchback_state_persisted") == 0

    control.retry_persist()  # too soon: no new attempt
    assert value(registry, "switchback_state_write_failures_total") == 1
    clock.now += RETRY_SECONDS
    control.retry_persist()  # still broken: one more failure
    assert value(registry, "switchback_state_write_failures_total") == 2

    mend_dir(state_dir, moved)
    assert saved(state_dir)["weights"] == {"blue": 70.0, "green": 30.0}  # the old state
    clock.now += RETRY_SECONDS
    control.retry_persist()
    assert control.summary()["persisted"] is True and control.summary()["persist_error"] is None
    assert value(registry, "switchback_state_persisted") == 1
    on_disk = saved(state_dir)
    assert on_disk["weights"] == {"blue": 100.0, "green": 0.0}
    assert on_disk["out_of_service"] == "green"
    rollout = on_disk["rollout"]
    assert isinstance(rollout, dict) and rollout["state"] == "rolled_back"
    clock.now += RETRY_SECONDS
    control.retry_persist()  # nothing left to save: no write, no failure
    assert value(registry, "switchback_state_write_failures_total") == 2


def test_the_latest_state_is_what_reaches_the_disk(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    clock = Clock()
    control, _ = control_for(state_dir, clock)
    control.restore()
    moved = break_dir(state_dir)
    control.set_weights({"green": 10})
    control.set_weights({"green": 20})
    control.promote()
    mend_dir(state_dir, moved)
    clock.now += RETRY_SECONDS
    control.retry_persist()
    on_disk = saved(state_dir)
    assert (on_disk["stable"], on_disk["weights"]) == ("green", {"blue": 0.0, "green": 100.0})


def test_a_state_directory_that_cannot_be_read_is_refused_at_start(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.write_text("in the way")  # whether a state is saved cannot be known
    control, registry = control_for(state_dir, Clock())
    with pytest.raises(StateError, match="traffic.json: unreadable: Not a directory"):
        control.restore()
    assert value(registry, "switchback_state_write_failures_total") == 0


def test_a_state_naming_other_releases_is_refused_not_replaced(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    content = json.dumps(
        {
            "version": 1,
            "stable": "blue",
            "candidate": "canary",
            "weights": {"blue": 100.0, "canary": 0.0},
            "saved_at": 1.0,
            "source": "state",
            "out_of_service": "canary",
        }
    )
    (state_dir / "traffic.json").write_text(content)
    control, _ = control_for(state_dir, Clock())
    with pytest.raises(StateError) as info:
        control.restore()
    assert "the config file's releases are blue, green" in str(info.value)
    assert (state_dir / "traffic.json").read_text() == content  # left for the operator
