"""Wall-clock times as every log line shows them: ISO 8601 in UTC, to the millisecond."""

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
