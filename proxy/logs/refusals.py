"""At most one log line per refusal reason per second, and a count of the ones not logged.

A flood of refusals (overload, a client sending over-long heads) must not become a flood of log
lines: the first refusal of a reason is logged, the next ones within ``PERIOD`` are only
counted, and the count goes out with the next line of that reason, or from ``due`` (the
runtime's ticker) once the period is over. Pure: the caller passes ``now``.
"""

from __future__ import annotations

PERIOD = 1.0


class RefusalLimiter:
    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self.last: dict[str, float] = {}  # reason -> when its last line went out
        self.suppressed: dict[str, int] = {}  # reason -> refusals not logged since

    def note(self, reason: str, now: float) -> int | None:
        """None: count it, log nothing; else log it, with this many suppressed before it."""
        last = self.last.get(reason)
        if last is not None and now - last < self.period:
            self.suppressed[reason] = self.suppressed.get(reason, 0) + 1
            return None
        self.last[reason] = now
        return self.suppressed.pop(reason, 0)

    def due(self, now: float) -> list[tuple[str, int]]:
        """The suppressed counts whose period is over: (reason, count), to log now."""
        out = []
        for reason, count in list(self.suppressed.items()):
            if now - self.last[reason] >= self.period:
                del self.suppressed[reason]
                self.last[reason] = now
                out.append((reason, count))
        return out
