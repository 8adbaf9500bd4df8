"""``switchback journal list`` and ``switchback journal replay``: the write journal of a running
Switchback, through its admin API (``GET /journal``, ``POST /journal/replay``).

``--since`` takes unix seconds, an ISO 8601 time (``2026-12-02T01:00:00Z``), or a duration
back from now (``30m``, ``2h``, ``1d``). ``replay`` exits 1 when an entry could not be sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from proxy.admin.client import AdminClient, AdminError
from proxy.cli.progress import Progress, duration
from proxy.errors import JournalError
from proxy.journal import store
from proxy.journal.entry import parse_header
from proxy.journal.views import format_list, format_replay, stored_to_json

Outcome = tuple[Any, str, int]
_AGO = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
REPLAY_TIMEOUT = 300.0


def since(text: str, now: float | None = None) -> float:
    """``--since`` to unix seconds (see the module docstring)."""
    text = text.strip()
    ago = _AGO.fullmatch(text)
    if ago:
        return (time.time() if now is None else now) - float(ago[1]) * _UNITS[ago[2]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time (unix seconds, ISO 8601, or 30m, 2h, 1d ago)"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def header(text: str) -> str:
    try:
        parse_header(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


Command = Callable[[Any, str, Callable[..., Outcome], str], Any]


def add_commands(sub: Any, command: Command) -> None:
    journal = sub.add_parser("journal", help="the writes a candidate served: list, replay")
    actions = journal.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "list", _list, "list the journaled writes of the candidate")
    p.add_argument("--since", type=since, metavar="T", help="unix seconds, ISO 8601, or 2h")
    p.add_argument("--release", metavar="NAME", help="only the entries this release wrote")
    p.add_argument("--limit", type=int, metavar="N", help="only the newest N")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="read the journal in this config's state_dir, not through the admin API "
        "(works while Switchback is stopped)",
    )
    p = command(actions, "replay", _replay, "send the journaled writes to a release, in order")
    p.add_argument("--to", required=True, metavar="RELEASE", help="e.g. blue (the stable one)")
    p.add_argument("--since", type=since, metavar="T", help="unix seconds, ISO 8601, or 2h")
    p.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    p.add_argument("--again", action="store_true", help="also send entries replayed before")
    p.add_argument(
        "--header",
        type=header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a header to send in place of the journaled one (e.g. a service token); repeatable",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=REPLAY_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for the whole replay (default {REPLAY_TIMEOUT:g})",
    )


def _list(client: AdminClient, args: argparse.Namespace) -> Outcome:
    if args.config:
        data = _read_directly(args)
        return data, format_list(data), 0
    query = {"since": args.since, "release": args.release, "limit": args.limit}
    given = {k: str(v) for k, v in query.items() if v is not None}
    path = "/journal" + ("?" + urllib.parse.urlencode(given) if given else "")
    data = client.get(path)
    return data, format_list(data), 0


def _read_directly(args: argparse.Namespace) -> dict[str, Any]:
    from proxy.config.load import load_config

    config = load_config(args.config)  # a ConfigError names the file, the key and the value
    path = os.path.join(config.state_dir, store.FILE)
    try:
        rows = store.read_file(path, since=args.since, release=args.release, limit=args.limit)
    except FileNotFoundError:
        raise JournalError(f"no journal at {path} (nothing journaled yet?)") from None
    except sqlite3.Error as exc:
        raise JournalError(f"journal {path} cannot be read: {exc}") from None
    entries = [stored_to_json(row) for row in rows]
    return {"file": path, "count": len(entries), "entries": entries}


def _replay(client: AdminClient, args: argparse.Namespace) -> Outcome:
    body = {
        "to": args.to,
        "since": args.since,
        "dry_run": args.dry_run,
        "again": args.again,
        "headers": args.header,
    }
    progress = Progress()
    watcher = None
    if progress.enabled:  # a terminal: show how far the replay is, from GET /status
        watcher = _Watcher(AdminClient(client.base_url, client.token, client.timeout), progress)
        watcher.start()
    client.timeout = max(client.timeout, args.wait)  # one call for every entry
    try:
        data = client.send("POST", "/journal/replay", body)
    finally:
        if watcher is not None:
            watcher.stop()
    return data, format_replay(data), 1 if data.get("failed") else 0


class _Watcher(threading.Thread):
    """Polls the journal's ``replaying`` (in GET /status) while the replay call runs."""

    def __init__(self, client: AdminClient, progress: Progress) -> None:
        super().__init__(name="replay-progress", daemon=True)
        self.client = client
        self.progress = progress
        self.done = threading.Event()
        self.began = time.monotonic()

    def run(self) -> None:
        while not self.done.wait(0.5):
            try:
                state = self.client.get("/status").get("journal", {}).get("replaying")
            except AdminError:
                continue  # progress is a nicety: the replay's own answer says what happened
            if state:
                self.progress.show(replay_status(state["done"], state["of"], self.elapsed()))

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def stop(self) -> None:
        self.done.set()
        self.join(2.0)
        self.progress.clear()


def replay_status(done: int, of: int, elapsed: float) -> str:
    """``replaying: 120 of 5000 entries (2%), about 3m 20s left``."""
    share = done / of if of else 1.0
    left = f", about {duration(elapsed / share - elapsed)} left" if done else ""
    return f"replaying: {done} of {of} entries ({share:.0%}){left}"
