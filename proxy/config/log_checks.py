"""What a ``logging:`` section must satisfy beyond its types (``proxy.config.checks`` calls it).

Each problem is ``(key path, value, problem)``, as ``checks`` reports every other one. Whether
``logging.file`` can be opened is found out where it is opened (``proxy.logs.output``), at
start-up and on each reload, with the same kind of message.
"""

from __future__ import annotations

from typing import Any

from proxy.schema import Config

FORMATS = ("text", "json", "logfmt")
LEVELS = ("debug", "info", "warning", "error", "critical")
Problem = tuple[str, Any, str]


def logging_problems(cfg: Config) -> list[Problem]:
    logs = cfg.logging
    out: list[Problem] = []
    if logs.format not in FORMATS:
        out.append(("logging.format", logs.format, f"is not one of {', '.join(FORMATS)}"))
    if logs.level.lower() not in LEVELS:
        out.append(("logging.level", logs.level, f"is not one of {', '.join(LEVELS)}"))
    if logs.file is not None and not logs.file.strip():
        out.append(("logging.file", logs.file, "is empty (leave it out for standard output)"))
    if not 1 <= logs.buffer <= 10_000_000:
        out.append(("logging.buffer", logs.buffer, "is not a line count in 1-10000000"))
    return out
