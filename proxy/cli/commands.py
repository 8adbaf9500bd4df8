"""The ``switchback`` command: run the proxy, check a config, drive a running proxy's admin API.

Exit codes: 0 success; 1 an error, printed as one line ``switchback: <message>`` on stderr;
2 a usage error, or ``report --fail-if-used`` naming an element the report does not know;
3 ``report --fail-if-used`` (or ``--fail-unless-safe``) while a client still uses the element
(or, on a fleet ledger, another replica's undelivered rows are about it), or ``diff-report
--fail-if-breaking`` while shadow traffic saw breaking differences recently;
4 ``report --fail-unless-safe`` while nobody uses the element but the report cannot yet call it
safe to remove (not watched on every day of the window); 130 interrupted.
No traceback reaches the terminal (``SWITCHBACK_DEBUG=1`` lets an unexpected one through).

The decision functions (``expand_weights``, ``fail_if_used``) are pure: JSON in, text or
numbers out; how answers read is ``proxy.admin.views``. The deprecation report's table
and its "still used?" test are ``proxy.core.report``'s, next to the code that builds the report.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from proxy import __version__
from proxy.admin.client import AdminClient, AdminError
from proxy.admin.views import format_change, format_status
from proxy.cli import journal as journal_cli
from proxy.cli import ledger as ledger_cli
from proxy.cli import openapi as openapi_cli
from proxy.core.fleetreport import not_delivered
from proxy.core.report import format_table, still_used
from proxy.core.shadowreport import format_table as format_diff_table
from proxy.errors import SwitchbackError
from proxy.fleet.view import format_fleet
from proxy.journal.views import rollback_line

DEFAULT_ADMIN = "http://127.0.0.1:9901"


class CliError(Exception):
    """A refused command or value; ``str(err)`` is the message, ``code`` the exit code.

    Not in ``proxy.errors``' tree: it ends as a line on a terminal and an exit code, and never
    crosses HTTP."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else 2
    try:
        command: Callable[[argparse.Namespace], int] = args.func
        return command(args)
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except (AdminError, SwitchbackError) as exc:  # a ConfigError, a StateError, ...
        _error(str(exc))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `switchback report | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except Exception as exc:
        if os.environ.get("SWITCHBACK_DEBUG"):
            raise
        _error(f"internal error: {type(exc).__name__}: {exc} (SWITCHBACK_DEBUG=1 shows more)")
    return 1


def _error(message: str) -> None:
    for line in message.splitlines() or [""]:
        print(f"switchback: {line}", file=sys.stderr)


# -- the command line --


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchback",
        description="Blue/green traffic proxy with progressive rollout and deprecation telemetry.",
    )
    parser.add_argument("--version", action="version", version=f"switchback {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="serve traffic with a config file")
    p.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    p.set_defaults(func=_run)
    p = sub.add_parser("check", help="validate a config file and exit")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=_check)
    p = sub.add_parser("demo", help="start demo blue/green apps and the proxy in front")
    p.add_argument("--no-wait", action="store_true", help="exit after the demo run")
    p.add_argument(
        "--fail-rate",
        type=float,
        default=None,
        metavar="FRACTION",
        help="make green answer 500 to this share of requests, to watch an automatic rollback",
    )
    p.set_defaults(func=_demo)
    _state_commands(sub)
    openapi_cli.add_parser(sub)
    ledger_cli.add_parser(sub)

    admin = argparse.ArgumentParser(add_help=False)
    group = admin.add_argument_group("admin API")
    group.add_argument("--admin", metavar="URL", help=f"env SWITCHBACK_ADMIN or {DEFAULT_ADMIN}")
    group.add_argument(
        "--token",
        help="bearer token, sent on every call (env SWITCHBACK_ADMIN_TOKEN): admin.token; "
        "for status and report, admin.read_token is enough",
    )
    group.add_argument("--json", action="store_true", help="print the server's JSON")
    group.add_argument("--timeout", type=_positive(float), default=10.0, metavar="SECONDS")

    def command(parent: Any, name: str, func: Callable[..., Any], help: str) -> Any:
        p = parent.add_parser(name, parents=[admin], help=help, description=help)
        p.set_defaults(func=lambda args: _admin_command(func, args))
        return p

    p = command(sub, "status", _status, "show releases, weights and the rollout")
    p.add_argument("--fleet", action="store_true", help="every replica of the fleet (Redis)")
    p = command(sub, "weights", _weights, "set the traffic split: weights green=25")
    p.add_argument("assignments", nargs="+", metavar="RELEASE=PERCENT")
    rollout = sub.add_parser("rollout", help="start, pause or resume a progressive rollout")
    steps = rollout.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(steps, "start", _rollout_start, "start a rollout of the candidate")
    p.add_argument("--steps", type=_steps, metavar="1,5,25,100", help="candidate weights")
    p.add_argument("--step-seconds", type=_positive(float), metavar="SECONDS")
    p.add_argument("--min-requests", type=_positive(int), metavar="N")
    p.add_argument("--max-error-rate", type=_positive(float), metavar="FRACTION")
    p.add_argument("--max-p99-ms", type=_positive(float), metavar="MS")
    p.add_argument("--auto-promote", action="store_true", default=None)
    command(steps, "pause", _simple("POST", "/rollout/pause", "rollout paused"), "pause it")
    command(steps, "resume", _simple("POST", "/rollout/resume", "rollout resumed"), "resume it")
    p = command(sub, "rollback", _rollback, "send all traffic back to the stable release")
    p.add_argument("--reason", metavar="TEXT")
    command(sub, "promote", _simple("POST", "/promote", "promoted"), "make the candidate stable")
    command(sub, "reload", _simple("POST", "/reload", "config reloaded"), "re-read the config")
    journal_cli.add_commands(sub, command)
    p = command(sub, "report", _report, "which clients still use deprecated elements")
    p.add_argument("--days", type=_positive(int), metavar="N", help="window (config default)")
    p.add_argument(
        "--fail-if-used",
        metavar="ELEMENT",
        help="exit 3 while a client uses ELEMENT (id or path) or a fleet replica's rows about "
        "it are not delivered yet, 0 when none does, 2 if unknown",
    )
    p.add_argument(
        "--fail-unless-safe",
        metavar="ELEMENT",
        help="as --fail-if-used, and exit 4 until the verdict is 'safe to remove' (watched "
        "on every day of the window)",
    )
    p = command(sub, "diff-report", _diff_report, "what shadow traffic found: top differences")
    p.add_argument("--limit", type=_positive(int), default=20, metavar="N")
    p.add_argument(
        "--fail-if-breaking",
        action="store_true",
        help="exit 3 while breaking differences are recent",
    )
    return parser


def _state_commands(sub: Any) -> None:
    state = sub.add_parser("state", help="show or reset the saved traffic state (traffic.json)")
    actions = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("show", help="print the saved traffic state and whether it is usable")
    p.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    p.add_argument("--json", action="store_true", help="print the saved state as JSON")
    p.set_defaults(func=lambda args: _state("show", args))
    p = actions.add_parser(
        "reset", help="set traffic.json aside (renamed) so the next start takes the config's split"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    p.add_argument(
        "--force", action="store_true", help="also set aside a usable state (undoes its changes)"
    )
    p.set_defaults(func=lambda args: _state("reset", args))


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
        return value

    return convert


def _steps(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 1,5,25,100") from None


# -- commands without the admin API --


def _run(args: argparse.Namespace) -> int:
    from proxy.app.serve import run_main

    return run_main(args.config)


def _check(args: argparse.Namespace) -> int:
    from proxy.config.load import load_config

    config = load_config(args.file)  # a ConfigError names the file, the key and the value
    count = len(config.deprecations)
    releases = ", ".join(config.releases)
    print(f"{args.file}: ok (releases {releases}; {count} deprecation{'' if count == 1 else 's'})")
    return 0


def _state(action: str, args: argparse.Namespace) -> int:
    from proxy.cli import state as state_cli

    command: Callable[[argparse.Namespace], int] = getattr(state_cli, action)
    return command(args)


def _demo(args: argparse.Namespace) -> int:
    from proxy.demo.run import main as demo_main

    argv = ["--no-wait"] if args.no_wait else []
    if args.fail_rate is not None:
        argv += ["--fail-rate", str(args.fail_rate)]
    return demo_main(argv)


# -- admin commands: each returns (the server's JSON, human text, exit code) --

Outcome = tuple[Any, str, int]


def _admin_command(func: Callable[[AdminClient, argparse.Namespace], Outcome], args: Any) -> int:
    url = args.admin or os.environ.get("SWITCHBACK_ADMIN") or DEFAULT_ADMIN
    token = args.token or os.environ.get("SWITCHBACK_ADMIN_TOKEN") or None
    client = AdminClient(url, token, args.timeout)
    try:
        data, text, code = func(client, args)
    except AdminError as exc:
        if exc.status == 401 and not token:
            hint = f"{exc} (give --token or set SWITCHBACK_ADMIN_TOKEN)"
            exc = AdminError(hint, exc.status, exc.code)
        raise exc from None
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() if args.json else text)
    return code


def _status(client: AdminClient, args: argparse.Namespace) -> Outcome:
    if args.fleet:
        fleet = client.get("/fleet")
        text = fleet.get("message") if fleet.get("standalone") else format_fleet(fleet)
        return fleet, str(text), 0
    data = client.get("/status")
    return data, format_status(data), 0


def _weights(client: AdminClient, args: argparse.Namespace) -> Outcome:
    status = client.get("/status")
    releases = list(status.get("releases") or status.get("weights") or {})
    weights = expand_weights(args.assignments, releases)
    data = client.send("PUT", "/traffic", {"weights": weights})
    return data, format_change("weights set", data), 0


def _rollout_start(client: AdminClient, args: argparse.Namespace) -> Outcome:
    options = ("steps", "step_seconds", "min_requests", "max_error_rate", "max_p99_ms")
    body = {key: getattr(args, key) for key in (*options, "auto_promote")}
    data = client.send("POST", "/rollout", {k: v for k, v in body.items() if v is not None})
    return data, format_change("rollout started", data), 0


def _rollback(client: AdminClient, args: argparse.Namespace) -> Outcome:
    body = {"reason": args.reason} if args.reason else None
    data = client.send("POST", "/rollback", body)
    text = format_change("rolled back", data)
    line = rollback_line(data)
    return data, text if line is None else f"{text}\n{line}", 0


def _simple(method: str, path: str, title: str) -> Callable[[AdminClient, Any], Outcome]:
    def call(client: AdminClient, args: argparse.Namespace) -> Outcome:
        data = client.send(method, path, None)
        return data, format_change(title, data), 0

    return call


def _report(client: AdminClient, args: argparse.Namespace) -> Outcome:
    data = client.get("/deprecations" if args.days is None else f"/deprecations?days={args.days}")
    text = format_table(data).rstrip("\n")
    if args.fail_unless_safe is not None:
        code, verdict = fail_unless_safe(data, args.fail_unless_safe)
    elif args.fail_if_used is not None:
        code, verdict = fail_if_used(data, args.fail_if_used)
    else:
        return data, text, 0
    if code == 2:
        raise CliError(verdict, 2)
    return data, f"{text}\n\n{verdict}", code


def _diff_report(client: AdminClient, args: argparse.Namespace) -> Outcome:
    data = client.get(f"/shadow?limit={args.limit}")
    text = format_diff_table(data).rstrip("\n")
    breaking = args.fail_if_breaking and data.get("breaking_recent", 0) > 0
    return data, text, 3 if breaking else 0


# -- pure formatting and decisions --


def expand_weights(assignments: Sequence[str], releases: Sequence[str]) -> dict[str, float]:
    """``["green=25"]`` with releases blue, green -> ``{"blue": 75.0, "green": 25.0}``.

    The one release left out, if any, gets the rest; whether the result sums to 100 is the
    server's check.
    """
    given: dict[str, float] = {}
    for item in assignments:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CliError(f"{item!r}: expected RELEASE=PERCENT, e.g. green=25")
        if name not in releases:
            raise CliError(f"{name}: unknown release (known: {', '.join(releases)})")
        if name in given:
            raise CliError(f"{name}: given twice")
        given[name] = _percent(name, text)
    missing = [r for r in releases if r not in given]
    if len(missing) > 1:
        raise CliError(f"give a weight for all releases but one ({', '.join(missing)} have none)")
    if missing:
        given[missing[0]] = round(100.0 - sum(given.values()), 2)
    return {r: given[r] for r in releases}


def _percent(name: str, text: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 100.0:  # also false for NaN
        raise CliError(f"{name}: {text!r} is not a percentage (0-100)")
    return value


def fail_unless_safe(report: dict[str, Any], element: str) -> tuple[int, str]:
    """``report --fail-unless-safe``: ``fail_if_used``, except that "nobody used it in the days
    it was watched" is 4, not 0: only the report's "safe to remove" passes."""
    code, message = fail_if_used(report, element)
    if code == 0 and not message.endswith("(safe to remove)"):
        return 4, message
    return code, message


def fail_if_used(report: dict[str, Any], element: str) -> tuple[int, str]:
    """``report --fail-if-used``: 3 while a client uses ``element`` (its id or path) within
    the report's window (or while a fleet replica's undelivered rows may hold a use), 0 when
    none does, 2 when the report does not know the element."""
    used = still_used(report, element)
    days = report.get("days", "?")
    if used is None:
        known = ", ".join(str(e.get("id")) for e in report.get("elements") or []) or "none"
        return 2, f"unknown deprecated element: {element} (known: {known})"
    if used:
        return 3, f"{element}: still used by a client in the last {days} days"
    if not_delivered(report, element):  # a fleet replica's spool may hold a use
        return 3, f"{element}: rows of another replica are not yet delivered; cannot tell yet"
    # Nobody uses it, which is all the gate asks; but say so only for the time it was watched,
    # as the report's verdict does, lest "the last 30 days" cover days nobody looked.
    matches = [e for e in report["elements"] if element in (e["id"], e["element"])]
    unsure = [e for e in matches if not e.get("safe")]
    if not unsure:
        return 0, f"{element}: no client used it in the last {days} days (safe to remove)"
    least = min(unsure, key=lambda e: float(e.get("observed_days") or 0.0))
    watched = math.floor(float(least.get("observed_days") or 0.0) * 10) / 10
    return 0, (
        f"{element}: no client used it in the {watched:.1f} days it was watched, of the last "
        f"{days}; the report's verdict: {least.get('verdict')}"
    )
