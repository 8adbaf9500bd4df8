"""The command line without a server: parsing, weights, what the admin commands print, and
the exit codes of ``report --fail-if-used``, all from JSON shaped like the server's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.admin.views import describe_rollout, format_change, format_status
from proxy.cli.commands import (
    CliError,
    build_parser,
    expand_weights,
    fail_if_used,
    fail_unless_safe,
    main,
)
from proxy.core.report import ElementInfo, UsageRow, build_report, report_to_json

DAY = 86_400.0
NOW = 1_800_000_000.0

# The example status from the admin API's contract.
STATUS: dict[str, Any] = {
    "stable": "blue",
    "candidate": "green",
    "weights": {"blue": 90.0, "green": 10.0},
    "source": "config",
    "client_id_header": "X-Client-Id",
    "uptime_seconds": 12.3,
    "config_file": "config/dev.yaml",
    "releases": {
        "blue": {
            "url": "http://127.0.0.1:9001",
            "weight": 90.0,
            "in_flight": 0,
            "requests": 10,
            "rate_per_s": 1.2,
            "error_rate": 0.0,
            "p99_ms": 3.1,
        },
        "green": {
            "url": "http://127.0.0.1:9002",
            "weight": 10.0,
            "in_flight": 2,
            "requests": 4,
            "rate_per_s": 0.25,
            "error_rate": 0.0125,
            "p99_ms": None,
        },
    },
    "rollout": {
        "state": "ramping",
        "step": 1,
        "steps": [1, 5, 10, 25, 50, 100],
        "candidate_weight": 5.0,
        "step_seconds": 60.0,
        "reason": None,
    },
}


def report_json(*, used: bool, watched_days: float = 60) -> dict[str, Any]:
    """A report as GET /deprecations returns it, built by the code the server uses."""
    elements = [
        ElementInfo(
            id="user-role",
            kind="field",
            element="user.role",
            deprecated_at=NOW - 90 * DAY,
            sunset_at=NOW + 200 * DAY,
            replacement="user.roles",
        ),
        ElementInfo(
            id="v0-users", kind="endpoint", element="GET /v0/users/{id}", deprecated_at=NOW
        ),
    ]
    usage = [
        UsageRow(
            element="user-role",
            client="web-app",
            kinds=("exposure",),
            count=12,
            first_seen=NOW - 5 * DAY,
            last_seen=NOW - DAY,
        )
    ]
    since = {e.id: NOW - watched_days * DAY for e in elements}
    reports = build_report(elements, usage if used else [], since, NOW, 30)
    return dict(orjson.loads(orjson.dumps(report_to_json(reports, NOW, 30))))  # over the wire


# -- parsing --


def test_admin_options_parse_on_every_admin_command() -> None:
    args = build_parser().parse_args(
        ["weights", "green=25", "--admin", "http://h:1", "--token", "t", "--json", "--timeout", "3"]
    )
    assert args.assignments == ["green=25"]
    assert (args.admin, args.token, args.json, args.timeout) == ("http://h:1", "t", True, 3.0)
    args = build_parser().parse_args(["rollout", "pause", "--token", "t"])
    assert (args.command, args.action, args.token) == ("rollout", "pause", "t")


def test_admin_options_default_to_none_so_the_environment_applies() -> None:
    args = build_parser().parse_args(["status"])
    assert (args.admin, args.token, args.json, args.timeout) == (None, None, False, 10.0)


def test_rollout_start_options() -> None:
    argv = ["rollout", "start", "--steps", "1,5,25,100", "--step-seconds", "30", "--auto-promote"]
    args = build_parser().parse_args(argv)
    assert args.steps == [1.0, 5.0, 25.0, 100.0]
    assert args.step_seconds == 30.0
    assert args.auto_promote is True
    # Options not given stay None, so the server keeps its configured values.
    args = build_parser().parse_args(["rollout", "start"])
    assert (args.steps, args.step_seconds, args.auto_promote) == (None, None, None)


@pytest.mark.parametrize(
    "argv, expected",
    [
        ([], "required"),
        (["weights"], "RELEASE=PERCENT"),
        (["rollout"], "required"),
        (["rollout", "start", "--steps", "1,x"], "--steps"),
        (["status", "--timeout", "0"], "--timeout"),
        (["report", "--days", "-3"], "--days"),
        (["status", "--bogus"], "unrecognized arguments"),
        (["run"], "--config"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err
    assert "Traceback" not in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "rollout" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("switchback ")


# -- weights --


@pytest.mark.parametrize(
    "assignments, expected",
    [
        (["green=25"], {"blue": 75.0, "green": 25.0}),
        (["blue=75"], {"blue": 75.0, "green": 25.0}),
        (["green=25", "blue=75"], {"blue": 75.0, "green": 25.0}),
        (["green=33.33"], {"blue": 66.67, "green": 33.33}),
        (["green=12.5%"], {"blue": 87.5, "green": 12.5}),
        (["green=0"], {"blue": 100.0, "green": 0.0}),
        (["green=100"], {"blue": 0.0, "green": 100.0}),
        # Both given: sent as they are; the server says whether they sum to 100.
        (["blue=50", "green=40"], {"blue": 50.0, "green": 40.0}),
    ],
)
def test_expand_weights(assignments: list[str], expected: dict[str, float]) -> None:
    weights = expand_weights(assignments, ["blue", "green"])
    assert weights == expected
    assert list(weights) == ["blue", "green"]


@pytest.mark.parametrize(
    "assignments, releases, message",
    [
        (["green"], ["blue", "green"], "'green': expected RELEASE=PERCENT"),
        (["=25"], ["blue", "green"], "expected RELEASE=PERCENT"),
        (["red=5"], ["blue", "green"], "red: unknown release (known: blue, green)"),
        (["green=140"], ["blue", "green"], "green: '140' is not a percentage (0-100)"),
        (["green=-1"], ["blue", "green"], "is not a percentage"),
        (["green=x"], ["blue", "green"], "green: 'x' is not a percentage"),
        (["green=nan"], ["blue", "green"], "is not a percentage"),
        (["green=5", "green=6"], ["blue", "green"], "green: given twice"),
        (["green=5"], ["blue", "green", "red"], "blue, red have none"),
    ],
)
def test_expand_weights_refuses(assignments: list[str], releases: list[str], message: str) -> None:
    with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        expand_weights(assignments, releases)


# -- human output --


def test_format_status() -> None:
    lines = format_status(STATUS).splitlines()
    assert lines[0].split() == [
        "RELEASE",
        "ROLE",
        "WEIGHT",
        "IN-FLIGHT",
        "REQ/S",
        "5XX",
        "RATE",
        "P99",
    ]
    assert lines[1].split() == ["blue", "stable", "90%", "0", "1.2", "0.00%", "3.1", "ms"]
    # No p99 yet: a dash, not "None".
    assert lines[2].split() == ["green", "candidate", "10%", "2", "0.2", "1.25%", "-"]
    assert lines[3] == "rollout:       ramping, step 2 of 6 (green at 5%, 60 s per step)"
    assert lines[4] == "traffic from:  config (config/dev.yaml)"
    assert lines[5] == "uptime:        12s"
    # Columns line up: every row is as wide as the header where the last column ends.
    assert len({line.index("%") for line in lines[1:3]}) == 1


def test_format_status_from_state_with_little_data() -> None:
    status = {"stable": "green", "candidate": "blue", "source": "state", "uptime_seconds": 7300}
    status["releases"] = {"green": {"weight": 100}, "blue": {}}
    text = format_status(status)
    assert text.splitlines()[1].split() == ["green", "stable", "100%", "-", "-", "-", "-"]
    assert text.splitlines()[2].split() == ["blue", "candidate", "-", "-", "-", "-", "-"]
    assert "traffic from:  state (saved admin changes)\n" in text
    assert "uptime:        2h 1m" in text


@pytest.mark.parametrize(
    "rollout, expected",
    [
        ({"state": "idle", "step": 0, "steps": [1, 100]}, "idle"),
        (
            {"state": "paused", "step": 0, "steps": [1, 100], "candidate_weight": 1.0},
            "paused, step 1 of 2 (green at 1%)",
        ),
        (
            {"state": "rolled_back", "step": 3, "reason": "green p99 912 ms > 500 ms"},
            "rolled_back; reason: green p99 912 ms > 500 ms",
        ),
        ({}, "unknown"),
    ],
)
def test_describe_rollout(rollout: dict[str, Any], expected: str) -> None:
    assert describe_rollout(rollout, "green") == expected


def test_format_change_shows_weights_and_rollout_left_behind() -> None:
    answer = {
        "stable": "green",
        "candidate": "blue",
        "weights": {"blue": 0.0, "green": 100.0},
        "rollout": {"state": "rolled_back", "reason": "manual"},
    }
    assert format_change("rolled back", answer) == (
        "rolled back\nweights:  green 100% (stable), blue 0%\nrollout:  rolled_back; reason: manual"
    )
    assert format_change("config reloaded", {"reloaded": "x.yaml"}) == "config reloaded"


NOT_SAVED = {
    "persisted": False,
    "persist_error": "No space left on device (OSError)",
    "state_file": "/var/lib/switchback/traffic.json",
}
WARNING = (
    "warning: not saved to /var/lib/switchback/traffic.json: No space left on device (OSError);"
    " in force now, but a restart would bring back the last saved state (retried every second)"
)


def test_a_change_or_status_not_saved_says_so() -> None:
    answer = {"stable": "blue", "weights": {"blue": 100.0}, **NOT_SAVED}
    assert format_change("rolled back", answer).splitlines() == [
        "rolled back",
        "weights:  blue 100% (stable)",
        WARNING,
    ]
    assert WARNING in format_status({**STATUS, **NOT_SAVED}).splitlines()
    assert "warning" not in format_status({**STATUS, "persisted": True})


# -- report --fail-if-used --


@pytest.mark.parametrize("element", ["user.role", "user-role"])
def test_fail_if_used_while_a_client_uses_it(element: str) -> None:
    code, message = fail_if_used(report_json(used=True), element)
    assert code == 3
    assert message == f"{element}: still used by a client in the last 30 days"


def test_fail_if_used_passes_when_nobody_uses_it() -> None:
    assert fail_if_used(report_json(used=False), "user.role")[0] == 0
    # Another element's clients do not count.
    assert fail_if_used(report_json(used=True), "v0-users")[0] == 0


def test_fail_if_used_does_not_wait_for_the_safe_verdict() -> None:
    # Watched for 2 of 30 days: the report cannot call it safe yet, but nobody uses it.
    report = report_json(used=False, watched_days=2)
    assert report["elements"][0]["safe"] is False
    code, message = fail_if_used(report, "user.role")
    assert code == 0
    # It says what the report says: it was not watched for the whole window.
    assert message == (
        "user.role: no client used it in the 2.0 days it was watched, of the last 30; "
        "the report's verdict: unknown: observed for only 2.0 days"
    )
    assert fail_if_used(report_json(used=False), "user.role") == (
        0,
        "user.role: no client used it in the last 30 days (safe to remove)",
    )


def test_fail_unless_safe_waits_for_the_safe_verdict() -> None:
    """The stricter gate: nobody used it in the 2 days it was watched is not enough (4); the
    report's "safe to remove" passes (0); a user still fails (3); an unknown element is 2."""
    code, message = fail_unless_safe(report_json(used=False, watched_days=2), "user.role")
    assert code == 4 and "unknown: observed for only 2.0 days" in message
    assert fail_unless_safe(report_json(used=False), "user.role")[0] == 0
    assert fail_unless_safe(report_json(used=True), "user.role")[0] == 3
    assert fail_unless_safe(report_json(used=True), "user.name")[0] == 2


def test_fail_if_used_unknown_element() -> None:
    code, message = fail_if_used(report_json(used=True), "user.name")
    assert code == 2
    assert message == "unknown deprecated element: user.name (known: user-role, v0-users)"


# -- check --

CONFIG = """\
releases:
  blue: {url: "http://127.0.0.1:9001"}
  green: {url: "http://127.0.0.1:9002"}
traffic:
  weights: {blue: 90, green: 10}
deprecations:
  - id: user-role
    field: user.role
    deprecated: 2025-01-01
    sunset: 2027-01-01
"""


def test_check_a_good_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(CONFIG)
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (releases blue, green; 1 deprecation)\n"


def test_check_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(CONFIG.replace("green: 10}", "green: 20}"))
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"switchback: {path}: traffic.weights:")
    assert "Traceback" not in err


def test_check_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("switchback: ") and "nope.yaml" in err
