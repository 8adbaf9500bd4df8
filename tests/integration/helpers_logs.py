"""Reading Switchback's log back: JSON lines, logfmt (a small parser) and the text format."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

_LOGFMT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def parse_logfmt(line: str) -> dict[str, str]:
    """``key=value key="quoted \\"value\\""`` -> {key: value}; the whole line must parse."""
    out: dict[str, str] = {}
    pos = 0
    line = line.rstrip("\n")
    while pos < len(line):
        found = _LOGFMT_PAIR.match(line, pos)
        assert found is not None, f"not logfmt at {pos}: {line!r}"
        key, raw = found[1], found[2]
        out[key] = orjson.loads(raw) if raw.startswith('"') else raw
        pos = found.end()
        while pos < len(line) and line[pos] == " ":
            pos += 1
    return out


def parse(fmt: str, line: str) -> dict[str, Any]:
    if fmt == "json":
        parsed: dict[str, Any] = orjson.loads(line)
        return parsed
    return parse_logfmt(line)


def lines_of(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []


async def wait_for_lines(
    read: Callable[[], list[str]],
    match: Callable[[str], bool],
    count: int = 1,
    timeout: float = 10.0,
) -> list[str]:
    """The lines ``read()`` returns that ``match``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [line for line in read() if match(line)]
        if len(found) >= count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {count} log line(s); have {found}")
        await asyncio.sleep(0.02)


async def records(
    path: Path, fmt: str, pred: Callable[[dict[str, Any]], bool], count: int = 1
) -> list[dict[str, Any]]:
    """The parsed records of the log file at ``path`` for which ``pred`` holds (``count``)."""

    def matching(line: str) -> bool:
        try:  # a file may hold lines of another format, from before a reload
            return pred(parse(fmt, line))
        except (ValueError, AssertionError):
            return False

    return [
        parse(fmt, line) for line in await wait_for_lines(lambda: lines_of(path), matching, count)
    ]
