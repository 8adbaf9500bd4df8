"""``switchback ledger export|import --config FILE``: move a usage ledger's history between the
SQLite file in ``state_dir`` and the PostgreSQL database of ``telemetry.ledger``, as JSON lines
on stdout / stdin (``proxy.deprecation.ledger_io``). Any backend to any backend: export with
one config, import with another.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from proxy.config.load import load_config
from proxy.deprecation.telemetry import LEDGER_FILE


def add_parser(sub: Any) -> None:
    ledger = sub.add_parser(
        "ledger", help="export or import the deprecation usage ledger (JSON lines)"
    )
    actions = ledger.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser(
        "export", help="print the ledger of the config (SQLite file or telemetry.ledger)"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    p.set_defaults(func=_export)
    p = actions.add_parser(
        "import", help="add JSON lines from stdin to the ledger of the config (counts add up)"
    )
    p.add_argument("--config", required=True, metavar="FILE", help="the YAML config file")
    p.set_defaults(func=_import)


def _where(args: argparse.Namespace) -> tuple[str | None, str]:
    config = load_config(args.config)  # a ConfigError names the file, the key and the value
    return config.telemetry.ledger, os.path.join(config.state_dir, LEDGER_FILE)


def _export(args: argparse.Namespace) -> int:
    # Imported when the command runs: psycopg is not loaded by every other command.
    from proxy.deprecation.ledger_io import export_lines, write_lines

    url, path = _where(args)
    rows = write_lines(export_lines(url, path), sys.stdout.buffer)
    sys.stdout.flush()
    print(f"switchback: exported {rows} line(s)", file=sys.stderr)
    return 0


def _import(args: argparse.Namespace) -> int:
    from proxy.deprecation.ledger_io import import_lines

    url, path = _where(args)
    rows = import_lines(url, path, sys.stdin.buffer)
    print(f"switchback: imported {rows} usage row(s)", file=sys.stderr)
    return 0
