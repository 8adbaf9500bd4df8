"""Values as every log line shows them: wall-clock times (ISO 8601 in UTC, to the millisecond)
and request targets (printable ASCII, losslessly). Compiled: the access step calls both for
every request."""

from __future__ import annotations

import time

_FRACTIONS = tuple(f".{ms:03d}Z" for ms in range(1000))


class IsoTimes:
    """``2026-12-04T02:50:00.123Z`` for a ``time.time()`` value (the millisecond truncated).
    The text of the last whole second is kept, so one instance serves one thread."""

    def __init__(self) -> None:
        self.second = -1
        self.text = ""

    def __call__(self, t: float) -> str:
        whole = int(t)
        if whole != self.second:
            self.second = whole
            self.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        return self.text + _FRACTIONS[int((t - whole) * 1000.0)]


SAFE = bytes(b for b in range(0x21, 0x7F) if b not in b'"\\')


def safe_target(target: bytes) -> str:
    """``target`` as printable ASCII, losslessly: any other byte, ``"``, ``\\`` as ``\\xNN``."""
    if not target.translate(None, SAFE):
        return target.decode("ascii")
    return "".join(chr(b) if b in SAFE else f"\\x{b:02x}" for b in target)
