"""Persistence of the traffic split and the rollout: round trip, atomic replace, bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import msgspec
import pytest

from proxy.config_schema import RolloutConfig
from proxy.errors import ConfigError
from proxy.rollout import Rollout, apply
from proxy.state_store import PersistedState, load_state, save_state


def make_state(green: float = 5.0, rollout: Rollout | None = None) -> PersistedState:
    return PersistedState(
        stable="blue",
        candidate="green",
        weights={"blue": 100.0 - green, "green": green},
        rollout=rollout,
        saved_at=1_700_000_000.5,
    )


def test_round_trip_with_a_rollout(tmp_path: Path) -> None:
    rollout = apply(Rollout.from_config(RolloutConfig(), {}), "start", 1_700_000_000.0).rollout
    rollout = apply(rollout, "rollback", 1_700_000_030.0, reason="green 5xx rate 12.0%").rollout
    state = make_state(green=0.0, rollout=rollout)
    save_state(str(tmp_path), state)
    assert load_state(str(tmp_path)) == state


def test_round_trip_without_a_rollout_in_a_new_directory(tmp_path: Path) -> None:
    state_dir = tmp_path / "deep" / "state"
    save_state(str(state_dir), make_state())
    assert load_state(str(state_dir)) == make_state()
    saved = json.loads((state_dir / "traffic.json").read_text())
    assert saved["weights"] == {"blue": 95.0, "green": 5.0}
    assert saved["version"] == 1 and saved["rollout"] is None


def test_absent_state_is_none(tmp_path: Path) -> None:
    assert load_state(str(tmp_path)) is None
    assert load_state(str(tmp_path / "missing")) is None


def test_save_replaces_the_file_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_state(str(tmp_path), make_state(green=5.0))
    save_state(str(tmp_path), make_state(green=25.0))
    assert os.listdir(tmp_path) == ["traffic.json"]
    loaded = load_state(str(tmp_path))
    assert loaded is not None and loaded.weights["green"] == 25.0


def test_a_failed_save_keeps_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_state(str(tmp_path), make_state(green=5.0))
    before = (tmp_path / "traffic.json").read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        save_state(str(tmp_path), make_state(green=50.0))
    assert (tmp_path / "traffic.json").read_bytes() == before
    assert os.listdir(tmp_path) == ["traffic.json"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "invalid saved state"),
        (b'{"stable": "blue", "cand', "invalid saved state"),
        (b"\x00\xff garbage", "invalid saved state"),
        (b'{"stable": "blue", "candidate": "green", "weights": "all", "saved_at": 1}', "weights"),
        (b'{"stable": "blue", "candidate": "green", "weights": {}}', "saved_at"),
        (
            b'{"stable": "blue", "candidate": "green", "weights": {}, "saved_at": 1,'
            b' "rollout": {"state": "exploded", "steps": [100], "step_seconds": 1,'
            b' "thresholds": {"min_requests": 1, "max_error_rate": 0.01,'
            b' "error_rate_factor": 2, "max_p99_ms": 500, "p99_factor": 1.5}}}',
            "rollout.state",
        ),
        (
            b'{"version": 9, "stable": "blue", "candidate": "green", "weights": {}, "saved_at": 1}',
            "version 9 is not 1",
        ),
    ],
)
def test_a_corrupt_file_is_a_config_error_naming_the_path(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "traffic.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_state(str(tmp_path))
    assert str(info.value).startswith(f"{path}: ")
    assert expected in str(info.value)


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "traffic.json").mkdir()  # reading a directory fails, even as root
    with pytest.raises(ConfigError, match="cannot read the saved state"):
        load_state(str(tmp_path))


def test_the_file_is_plain_json_an_operator_can_read(tmp_path: Path) -> None:
    save_state(str(tmp_path), make_state())
    text = (tmp_path / "traffic.json").read_text()
    assert text.endswith("\n") and '\n  "stable": "blue"' in text
    assert msgspec.json.decode(text.encode(), type=PersistedState) == make_state()
