"""A one-line status for long work on a terminal: ``\\r`` and the line again, on stderr.

Silent unless the stream is a terminal and ``CI`` is unset, so a log or a CI job gets only the
command's own output. ``show`` redraws at most every ``interval`` seconds (a busy loop may call
it often); ``clear`` wipes the line before other output or at the end.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Mapping
from typing import TextIO


def enabled_for(stream: TextIO, env: Mapping[str, str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and not env.get("CI")


def duration(seconds: float) -> str:
    """``75`` -> ``1m 15s``; ``8`` -> ``8s``; ``4000`` -> ``1h 6m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60}m"


class Progress:
    def __init__(
        self,
        stream: TextIO | None = None,
        env: Mapping[str, str] | None = None,
        interval: float = 0.2,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled_for(self.stream, os.environ if env is None else env)
        self.interval = interval
        self.width = 0
        self.last = -interval

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        text = text[: max(20, shutil.get_terminal_size().columns - 1)]
        self.stream.write("\r" + text + " " * max(0, self.width - len(text)))
        self.stream.flush()
        self.width = len(text)

    def clear(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
