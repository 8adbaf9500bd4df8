"""``switchback state show`` and ``state reset``: what they print, their exit codes, and that a
reset renames (never deletes) and refuses a usable state without ``--force``."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.cli.commands import main
from proxy.cli.state import describe_state
from proxy.core.rollout import Rollout, apply
from proxy.schema import RolloutConfig
from proxy.traffic.state import PersistedState, save_state


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "switchback.yaml"
    path.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        "releases: {blue: {url: 'http://127.0.0.1:9001'}, green: {url: 'http://127.0.0.1:9002'}}\n"
        "traffic: {stable: blue, weights: {blue: 90, green: 10}}\n"
    )
    return path


def rolled_back() -> PersistedState:
    rollout = apply(Rollout.from_config(RolloutConfig(), {}), "start", 1_781_535_000.0).rollout
    rollout = apply(rollout, "rollback", 1_781_535_999.0, reason="green 5xx rate 12%").rollout
    return PersistedState(
        stable="blue",
        candidate="green",
        weights={"blue": 100.0, "green": 0.0},
        rollout=rollout,
        saved_at=1_781_535_999.0,
        out_of_service="green",
    )


def test_describe_state_shows_what_would_be_restored() -> None:
    assert describe_state("/s/traffic.json", rolled_back()) == (
        "/s/traffic.json (saved 2026-06-15T15:06:39Z)\n"
        "  stable:          blue\n"
        "  candidate:       green\n"
        "  weights:         blue 100%, green 0%\n"
        "  rollout:         rolled_back (green 5xx rate 12%)\n"
        "  out of service:  green\n"
        "  source:          state"
    )


def test_show_without_a_saved_state(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["state", "show", "--config", str(config)]) == 0
    state = config.parent / "state" / "traffic.json"
    assert capsys.readouterr().out == (
        f"{state}: no saved state; the next start takes the split in {config}: "
        "stable blue, blue 90%, green 10%\n"
    )


def test_show_a_usable_state_as_text_and_json(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_state(str(config.parent / "state"), rolled_back())
    assert main(["state", "show", "--config", str(config)]) == 0
    assert "rolled_back (green 5xx rate 12%)" in capsys.readouterr().out
    assert main(["state", "show", "--config", str(config), "--json"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert (shown["out_of_service"], shown["rollout"]["state"]) == ("green", "rolled_back")


def test_show_an_unusable_state_exits_1_with_the_recovery_command(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = config.parent / "state" / "traffic.json"
    state.parent.mkdir()
    state.write_bytes(b'{"version": 1, "stable": "bl')
    assert main(["state", "show", "--config", str(config)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"switchback: {state}: not valid JSON, cut short or damaged (Input data was truncated)."
        f" Switchback will not start with it; `switchback state reset --config {config}` sets it"
        " aside.\n"
    )


def test_reset_sets_an_unusable_file_aside_and_the_config_split_follows(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = config.parent / "state" / "traffic.json"
    state.parent.mkdir()
    state.write_bytes(b"\x00garbage")
    assert main(["state", "reset", "--config", str(config)]) == 0
    (moved,) = state.parent.glob("traffic.json.unusable-*")
    assert moved.read_bytes() == b"\x00garbage"  # renamed, never deleted
    assert not state.exists()
    assert capsys.readouterr().out == (
        f"{state}: set aside as {moved}\n"
        f"the next start takes the split in {config}: stable blue, blue 90%, green 10%\n"
    )
    assert main(["state", "reset", "--config", str(config)]) == 0  # nothing left: fine
    assert capsys.readouterr().out == f"{state}: no saved state, nothing to reset\n"


def test_reset_refuses_a_usable_state_without_force(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_state(str(config.parent / "state"), rolled_back())
    state = config.parent / "state" / "traffic.json"
    before = state.read_bytes()
    assert main(["state", "reset", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"switchback: {state} is a usable saved state (stable blue, blue 100%")
    assert "could undo a rollback. Give --force" in err
    assert state.read_bytes() == before
    assert main(["state", "reset", "--config", str(config), "--force"]) == 0
    (moved,) = state.parent.glob("traffic.json.reset-*")
    assert moved.read_bytes() == before and not state.exists()


def test_reset_says_why_a_file_cannot_be_set_aside(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (config.parent / "state").write_text("a file where the state directory should be")
    assert main(["state", "reset", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("switchback: ") and "Traceback" not in err
    assert "Not a directory" in err
