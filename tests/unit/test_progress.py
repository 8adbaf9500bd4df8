"""The status line of long work: on a terminal only, quiet in CI and when piped."""

from __future__ import annotations

import io
import os
import select

import pytest

from proxy.cli.journal import replay_status
from proxy.cli.progress import Progress, duration


@pytest.fixture
def terminal() -> tuple[io.TextIOWrapper, int]:
    """A real pseudo-terminal: (what the program writes to, what the terminal receives)."""
    master, slave = os.openpty()
    stream = open(slave, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    yield stream, master
    stream.close()
    os.close(master)


def test_on_a_terminal_the_line_is_redrawn_in_place_and_cleared(
    terminal: tuple[io.TextIOWrapper, int],
) -> None:
    stream, master = terminal
    progress = Progress(stream, env={}, interval=0)
    assert progress.enabled
    progress.show("round 1/3 switchback")
    progress.show("round 2/3 x")
    progress.clear()
    expected = "\rround 1/3 switchback\rround 2/3 x         \r" + " " * 11 + "\r"
    assert read_terminal(master, len(expected)) == expected


def read_terminal(master: int, size: int) -> str:
    """What the terminal received, once ``size`` bytes came (or 5 s passed)."""
    seen = b""
    while len(seen) < size and select.select([master], [], [], 5)[0]:
        seen += os.read(master, 4096)
    return seen.decode()


def test_quiet_in_ci_and_when_not_a_terminal(terminal: tuple[io.TextIOWrapper, int]) -> None:
    stream, _ = terminal
    assert not Progress(stream, env={"CI": "true"}).enabled
    piped = io.StringIO()
    progress = Progress(piped, env={})
    progress.show("x", force=True)
    progress.clear()
    assert not progress.enabled and piped.getvalue() == ""


def test_durations_and_the_replay_line() -> None:
    assert [duration(s) for s in (8, 75, 4000, -3)] == ["8s", "1m 15s", "1h 6m", "0s"]
    assert replay_status(0, 5000, 1.0) == "replaying: 0 of 5000 entries (0%)"
    assert replay_status(1000, 5000, 10.0) == (
        "replaying: 1000 of 5000 entries (20%), about 40s left"
    )
