"""What the status page shows over time: a short history of window snapshots, and the recent
events an operator looks for first (rollbacks, refused reloads, requests refused by a limit).

Both are bounded rings kept in memory (a restart forgets them; the metrics and the log keep
the full record). Pure: the caller passes ``now`` (unix seconds) and the values.

``History`` takes a sample when ``due(now)``: every ``every`` seconds, at most ``size`` kept,
the oldest dropped first. A sample is the status's per-release statistics at that moment (5xx
rate and p99 over the rollout's window), with the roles and rollout state then in force, so a
chart can draw the candidate against the stable release even across a promotion.

``Events`` keeps the newest ``size`` events. Refusals come in bursts (a client hitting a limit
in a loop): an event of the same kind and detail within ``merge_seconds`` of the last one adds
to its ``count`` and moves its ``last_at`` instead of pushing the others out.
"""

from __future__ import annotations

from collections import deque
from typing import Any

ROLLBACK = "rollback"
RELOAD_FAILED = "reload_failed"
REFUSED = "refused"
EVENT_KINDS = (ROLLBACK, RELOAD_FAILED, REFUSED)

HISTORY_EVERY = 2.0  # seconds between two samples
HISTORY_SIZE = 300  # samples kept: ten minutes at HISTORY_EVERY
EVENTS_SIZE = 50
MERGE_SECONDS = 60.0


class History:
    def __init__(self, every: float = HISTORY_EVERY, size: int = HISTORY_SIZE) -> None:
        if not every > 0 or size < 1:
            raise ValueError(f"History needs every > 0 and size >= 1, not {every!r}, {size!r}")
        self.every = every
        self.size = size
        self._samples: deque[dict[str, Any]] = deque(maxlen=size)
        self._next_at = float("-inf")

    def due(self, now: float) -> bool:
        return now >= self._next_at

    def add(self, now: float, sample: dict[str, Any]) -> None:
        """Keep ``sample`` (taken at ``now``); the next one is due ``every`` seconds later."""
        self._samples.append({"at": round(now, 3), **sample})
        self._next_at = now + self.every

    def to_json(self) -> dict[str, Any]:
        return {
            "every_seconds": self.every,
            "size": self.size,
            "samples": list(self._samples),  # oldest first
        }


class Events:
    def __init__(self, size: int = EVENTS_SIZE, merge_seconds: float = MERGE_SECONDS) -> None:
        self._events: deque[dict[str, Any]] = deque(maxlen=size)
        self.merge_seconds = merge_seconds

    def add(self, kind: str, detail: str, now: float, merge: bool = False) -> None:
        """Record one event; with ``merge``, fold it into a recent one of the same kind and
        detail (the newest such event, if it is among the last few and recent enough)."""
        if merge:
            for event in _last(self._events, 8):
                if event["kind"] == kind and event["detail"] == detail:
                    if now - event["last_at"] <= self.merge_seconds:
                        event["count"] += 1
                        event["last_at"] = round(now, 3)
                        return
                    break
        at = round(now, 3)
        self._events.append({"kind": kind, "detail": detail, "at": at, "last_at": at, "count": 1})

    def to_json(self) -> dict[str, Any]:
        """Newest first; each event a copy, so callers cannot change the record."""
        return {"events": [dict(event) for event in reversed(self._events)]}


def _last(events: deque[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The newest ``n`` events, newest first."""
    out = []
    for i in range(1, min(n, len(events)) + 1):
        out.append(events[-i])
    return out
