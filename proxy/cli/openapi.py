"""``switchback import-openapi FILE``: print the ``deprecations:`` an OpenAPI document declares.

The conversion is ``proxy.openapi``'s; this module parses the options, prints notes and
validation warnings on stderr (``switchback: note: ...``, ``switchback: warning: ...``) and
writes the YAML to stdout or ``--output``. A document that cannot be imported exits 2 with one
line naming the file and the place.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from typing import Any

from proxy.errors import ConfigError


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "import-openapi",
        help="print the deprecations an OpenAPI document declares, as config entries",
        description="Read an OpenAPI 3.0/3.1 or Swagger 2.0 document (YAML or JSON) and print "
        "a deprecations: list for every deprecated operation, query parameter, request body "
        "property and response property.",
    )
    p.add_argument("file", metavar="FILE", help="the OpenAPI document")
    p.add_argument(
        "--base-path",
        metavar="PREFIX",
        help="put PREFIX before every path template; default: the path of the first server "
        "URL (OpenAPI 3) or basePath (Swagger 2.0); '' for none",
    )
    p.add_argument(
        "--deprecated-on",
        type=_date,
        metavar="DATE",
        help="deprecation date (YYYY-MM-DD) where the document gives none "
        "(x-deprecated-at, x-deprecation-date); default: today (UTC)",
    )
    p.add_argument("--output", "-o", metavar="FILE", help="write the YAML here, not to stdout")
    p.add_argument("--strict", action="store_true", help="refuse a document that does not validate")
    p.set_defaults(func=run)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def run(args: argparse.Namespace) -> int:
    from proxy.cli.commands import CliError

    try:
        from proxy.openapi.document import import_file
    except ImportError as exc:  # installed without the extra
        raise CliError(
            f"import-openapi needs {exc.name or 'its libraries'}: pip install 'switchback[openapi]'"
        ) from None

    today = args.deprecated_on or dt.datetime.now(dt.UTC).date()
    try:
        imported = import_file(
            args.file, deprecated_on=today, base_path=args.base_path, strict=args.strict
        )
    except ConfigError as exc:
        raise CliError(str(exc), 2) from None
    for line in imported.warnings:
        print(f"switchback: warning: {line}", file=sys.stderr)
    for line in imported.notes:
        print(f"switchback: note: {line}", file=sys.stderr)
    if args.output is None:
        sys.stdout.write(imported.text)
        return 0
    try:
        _write(args.output, imported.text)
    except OSError as exc:
        raise CliError(f"{args.output}: cannot be written: {exc.strerror}", 2) from None
    plural = "y" if imported.count == 1 else "ies"
    print(f"{args.output}: {imported.count} deprecation entr{plural} written", file=sys.stderr)
    return 0


def _write(path: str, text: str) -> None:
    """Whole or not at all: a temporary file beside ``path``, renamed over it."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
