"""Persistence of the traffic split and the rollout: round trip, atomic replace, bad files,
file modes, leftover temporary files, the refusal message, and setting a file aside."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest

from proxy.core.rollout import Rollout, apply
from proxy.errors import StateError
from proxy.schema import RolloutConfig
from proxy.traffic.state import (
    PersistedState,
    check_state,
    load_state,
    refusal,
    remove_temp_files,
    save_state,
    set_aside,
)


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
        (b"", "the file is empty"),
        (b"  \n", "the file is empty"),
        (b'{"stable": "blue", "cand', "not valid JSON, cut short or damaged (Input data was"),
        (b"\x00\xff garbage", "not valid JSON, cut short or damaged"),
        (b"[1, 2]", "not a saved traffic state (Expected `object`, got `array`)"),
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
            b'{"stable": "blue", "candidate": "green", "weights": {}, "saved_at": 1,'
            b' "source": "somewhere"}',
            "source",
        ),
        (
            b'{"version": 9, "stable": "blue", "candidate": "green", "weights": {}, "saved_at": 1}',
            "format version 9; this Switchback reads 1",
        ),
        (b'{"version": "one"}', "not a saved traffic state (Expected `int`, got `str`"),
    ],
)
def test_an_unusable_file_is_a_state_error_naming_the_path(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "traffic.json"
    path.write_bytes(content)
    with pytest.raises(StateError) as info:
        load_state(str(tmp_path))
    assert str(info.value).startswith(f"{path}: ")
    assert info.value.path == str(path)
    assert expected in str(info.value)


def test_a_truncated_save_is_refused_at_every_length(tmp_path: Path) -> None:
    """Whatever length a write was cut at, what is left is refused, never half-believed."""
    rollout = apply(Rollout.from_config(RolloutConfig(), {}), "start", 1_700_000_000.0).rollout
    save_state(str(tmp_path), make_state(rollout=rollout))
    whole = (tmp_path / "traffic.json").read_bytes()
    for cut in range(len(whole.rstrip())):
        (tmp_path / "traffic.json").write_bytes(whole[:cut])
        with pytest.raises(StateError):
            load_state(str(tmp_path))


def test_an_unreadable_file_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "traffic.json").mkdir()  # reading a directory fails, even as root
    with pytest.raises(StateError, match="unreadable: Is a directory"):
        load_state(str(tmp_path))


RELEASES = ("blue", "green")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, None),
        (
            {"stable": "purple", "weights": {"purple": 100.0, "green": 0.0}},
            "it names the stable release purple, the candidate green and weights for purple, "
            "green; the config file's releases are blue, green",
        ),
        ({"candidate": "blue"}, "it names the stable release blue, the candidate blue and"),
        ({"weights": {"blue": 100.0}}, "weights: none for green"),
        ({"weights": {"blue": 140.0, "green": -40.0}}, "weights.blue: 140.0 is not a percentage"),
        ({"weights": {"blue": 60.0, "green": 30.0}}, "weights: 90 in all, not 100"),
        ({"weights": {"blue": math.inf, "green": 0.0}}, "weights.blue: inf is not a percentage"),
        ({"out_of_service": "purple"}, "out_of_service: purple is not a release"),
    ],
)
def test_check_state_says_what_makes_a_state_unusable(
    change: dict[str, Any], expected: str | None
) -> None:
    problem = check_state(msgspec.structs.replace(make_state(), **change), RELEASES)
    if expected is None:
        assert problem is None
    else:
        assert problem is not None and problem.startswith(expected), problem


def test_check_state_refuses_a_rollout_step_outside_its_steps() -> None:
    rollout = msgspec.structs.replace(
        Rollout.from_config(RolloutConfig(steps=[10.0, 100.0]), {}), step_index=2
    )
    problem = check_state(make_state(rollout=rollout), RELEASES)
    assert problem == "rollout.step_index: 2 is not a step of [10.0, 100.0]"


def test_refusal_names_the_file_the_problem_and_both_commands() -> None:
    error = StateError("/var/lib/switchback/traffic.json", "the file is empty")
    text = refusal(error, "/etc/switchback/my config.yaml")
    assert text.startswith(
        "cannot start: saved traffic state /var/lib/switchback/traffic.json: the file is empty. "
    )
    assert "does not fall back to the split in /etc/switchback/my config.yaml" in text
    assert "`switchback state show --config '/etc/switchback/my config.yaml'`" in text
    assert "`switchback state reset --config '/etc/switchback/my config.yaml'`" in text
    assert "\n" not in text  # one paragraph, one log line


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_the_file_and_a_new_directory_are_private_whatever_the_umask(
    tmp_path: Path, umask: int
) -> None:
    old = os.umask(umask)
    try:
        save_state(str(tmp_path / "state"), make_state())
        save_state(str(tmp_path / "state"), make_state(green=10.0))  # the replacement too
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state" / "traffic.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700 & ~umask


def test_a_umask_that_takes_the_owner_s_bits_still_gives_0600(tmp_path: Path) -> None:
    old = os.umask(0o277)  # would make a new file 0400
    try:
        save_state(str(tmp_path), make_state())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "traffic.json").stat().st_mode) == 0o600


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o750)
    save_state(str(tmp_path), make_state())
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "traffic.json").stat().st_mode) == 0o600


def test_a_save_into_a_directory_that_is_a_file_raises_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "state").write_text("not a directory")
    with pytest.raises(OSError):
        save_state(str(tmp_path / "state"), make_state())
    assert (tmp_path / "state").read_text() == "not a directory"


def test_leftover_temporary_files_are_never_read_and_are_removed(tmp_path: Path) -> None:
    save_state(str(tmp_path), make_state(green=5.0))
    leftover = tmp_path / ".traffic.json.k2j3h4.tmp"
    leftover.write_bytes(b'{"stable": "blue", "candidate": "gr')  # a crash mid-write
    other = tmp_path / ".notes.tmp"
    other.write_text("not ours")
    loaded = load_state(str(tmp_path))
    assert loaded is not None and loaded.weights["green"] == 5.0
    assert remove_temp_files(str(tmp_path)) == [str(leftover)]
    assert sorted(os.listdir(tmp_path)) == [".notes.tmp", "traffic.json"]
    assert remove_temp_files(str(tmp_path / "missing")) == []


def test_set_aside_renames_with_the_utc_time_and_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "traffic.json").write_bytes(b"first")
    first = set_aside(str(tmp_path), "unusable", 1_781_535_999.0)
    assert first == str(tmp_path / "traffic.json.unusable-20260615T150639Z")
    (tmp_path / "traffic.json").write_bytes(b"second")
    second = set_aside(str(tmp_path), "unusable", 1_781_535_999.0)  # the same second
    assert second == first + ".1"
    assert Path(first).read_bytes() == b"first" and Path(second).read_bytes() == b"second"
    assert not (tmp_path / "traffic.json").exists()
    assert load_state(str(tmp_path)) is None


def test_the_file_is_plain_json_an_operator_can_read(tmp_path: Path) -> None:
    save_state(str(tmp_path), make_state())
    text = (tmp_path / "traffic.json").read_text()
    assert text.endswith("\n") and '\n  "stable": "blue"' in text
    assert msgspec.json.decode(text.encode(), type=PersistedState) == make_state()
