"""What the ledger keeps in memory: the touches not yet written (``Pending``), and since when
and on which days each element was watched (``Observation``), with what of it waits to be
written. No I/O and no clock reads: ``proxy.deprecation.ledger`` passes ``now`` and does the
writing.

Bounded: ``Pending`` holds at most ``MAX_PENDING`` keys (element, kind, client, UTC day), the
batch being written included; ``add`` refuses a new key beyond that, and the caller marks the
element's day as not fully watched (``Observation.lose``), so that the report never calls an
element safe to remove on a day it could not count in full.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from proxy.core.report import DAY, UsageRow
from proxy.deprecation.ledger_db import Opened

MAX_PENDING = 100_000  # keys: about 30 MB (measured: 285 bytes a key with a 25-character id)

Key = tuple[str, str, str, int]  # element, kind, client, day number (whole days since epoch)
Pair = tuple[str, int]  # element, day number


def day_of(ts: float) -> int:
    return int(ts // DAY)


@functools.lru_cache(maxsize=64)
def day_text(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * DAY))


class Tally:
    __slots__ = ("count", "first", "last")

    def __init__(self, count: int, first: float, last: float) -> None:
        self.count = count
        self.first = first
        self.last = last

    def merge(self, other: Tally) -> None:
        self.count += other.count
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)


@dataclass
class Batch:
    """What one flush writes; put back when the write fails."""

    usage: dict[Key, Tally]
    elements: dict[str, float]
    watched: set[Pair]
    lossy: set[Pair]
    generation: int  # of the file it was meant for

    def empty(self) -> bool:
        return not (self.usage or self.elements or self.watched or self.lossy)


class Pending:
    """Touches recorded since the last write: ``usage``, and ``inflight``, the batch being
    written (None once committed)."""

    __slots__ = ("usage", "inflight")

    def __init__(self) -> None:
        self.usage: dict[Key, Tally] = {}
        self.inflight: dict[Key, Tally] | None = None

    def __len__(self) -> int:
        return len(self.usage) + len(self.inflight or ())

    def add(self, element: str, kind: str, client: str, now: float, count: int) -> bool:
        """Counts the touches; False (nothing counted) when that needs a key beyond the bound."""
        key = (element, kind, client, int(now // DAY))
        tally = self.usage.get(key)
        if tally is None:
            if len(self.usage) + len(self.inflight or ()) >= MAX_PENDING:
                return False
            self.usage[key] = Tally(count, now, now)
        else:
            tally.count += count
            if now < tally.first:
                tally.first = now
            if now > tally.last:
                tally.last = now
        return True

    def take(self) -> dict[Key, Tally]:
        """The touches so far, now in flight; new ones collect anew."""
        batch, self.usage = self.usage, {}
        self.inflight = batch
        return batch

    def put_back(self, batch: dict[Key, Tally]) -> None:
        for key, tally in batch.items():
            mine = self.usage.get(key)
            if mine is None:
                self.usage[key] = tally
            else:
                mine.merge(tally)

    def snapshot(self) -> tuple[dict[Key, Tally], ...]:
        """The dicts holding unflushed touches now (take it under the ledger's lock, with the
        stored rows, so that a batch committing meanwhile is counted once)."""
        return (self.usage, self.inflight or {})


def touches(
    batches: Iterable[dict[Key, Tally]], since: float
) -> Iterator[tuple[str, str, str, Tally]]:
    """(element, client, kind, tally) of every key last touched at or after ``since``."""
    for batch in batches:
        for (element, kind, client, _), tally in batch.items():
            if tally.last >= since:
                yield element, client, kind, tally


TOUCHES = frozenset({"use", "exposure"})  # the kinds a row's count adds up (reads are exposures)


def aggregate(rows: Iterable[tuple[str, str, str, Tally]]) -> list[UsageRow]:
    """Per (element, client), the (element, client, kind, tally) rows given, as ``UsageRow``s."""
    totals: dict[tuple[str, str], tuple[dict[str, int], Tally]] = {}
    for element, client, kind, tally in rows:
        total = totals.get((element, client))
        if total is None:
            total = totals[element, client] = ({}, Tally(0, tally.first, tally.last))
        by_kind = total[0]
        by_kind[kind] = by_kind.get(kind, 0) + tally.count
        total[1].merge(Tally(tally.count if kind in TOUCHES else 0, tally.first, tally.last))
    return [
        UsageRow(
            element=element,
            client=client,
            kinds=tuple(sorted(by_kind)),
            count=t.count,
            first_seen=t.first,
            last_seen=t.last,
            exposures=by_kind.get("exposure", 0),
            reads=by_kind.get("read", 0),
            unread=by_kind.get("unread", 0),
        )
        for (element, client), (by_kind, t) in totals.items()
    ]


class Observation:
    """Since when the ledger watches (``since``), when each element was first configured, and
    on which days (since the epoch, UTC) it was configured and watched: time Switchback was
    down, or an element was out of the config, is not observation."""

    def __init__(self, since: float) -> None:
        self.since = since
        self.first_configured: dict[str, float] = {}
        self.watched: dict[str, set[int]] = {}
        self.watching: set[str] = set()
        self.lossy: set[Pair] = set()  # (element, day) on which a touch was lost
        # Not written yet:
        self.new_elements: dict[str, float] = {}
        self.new_watched: set[Pair] = set()
        self.new_lossy: set[Pair] = set()

    def register(self, ids: Iterable[str], now: float) -> None:
        """``now`` is the first time each new id was configured; ids seen before keep theirs.
        From now on ``ids`` are the configured elements."""
        ids = list(ids)
        for element in ids:
            if element not in self.first_configured:
                self.first_configured[element] = now
                self.new_elements[element] = now
        self.watch(ids, now)

    def watch(self, ids: Iterable[str], now: float) -> None:
        self.watching = set(ids)
        self.mark(now)

    def mark(self, now: float) -> None:
        """The day of ``now`` counts as watched for the configured elements."""
        day = day_of(now)
        for element in self.watching:
            days = self.watched.setdefault(element, set())
            if day not in days and (element, day) not in self.lossy:
                days.add(day)
                self.new_watched.add((element, day))

    def lose(self, element: str, day: int) -> None:
        """A touch of ``element`` on ``day`` could not be kept: that day is not watched."""
        if (element, day) not in self.lossy:
            self.lossy.add((element, day))
            self.new_lossy.add((element, day))
            self.watched.get(element, set()).discard(day)
            self.new_watched.discard((element, day))

    def forget(self, now: float) -> None:
        """The stored history is gone (a corrupt file replaced): observation starts at ``now``."""
        self.since = now
        self.first_configured, self.new_elements = {}, {}
        self.watched, self.new_watched = {}, set()
        self.register(self.watching, now)

    def adopt(self, opened: Opened) -> None:
        """What a file opened holds: its start, and the first dates and days it stored."""
        self.since = opened.observing_since
        for element, first in opened.first_configured.items():
            self.first_configured[element] = min(self.first_configured.get(element, first), first)
        for element, days in opened.watched.items():
            kept = (day for day in days if (element, day) not in self.lossy)
            self.watched.setdefault(element, set()).update(kept)

    def take(self, generation: int, usage: dict[Key, Tally]) -> Batch:
        batch = Batch(usage, self.new_elements, self.new_watched, self.new_lossy, generation)
        self.new_elements, self.new_watched, self.new_lossy = {}, set(), set()
        return batch

    def put_back(self, batch: Batch) -> None:
        for element, ts in batch.elements.items():
            self.new_elements.setdefault(element, ts)
        self.new_watched |= batch.watched - self.lossy
        self.new_lossy |= batch.lossy

    def prune(self, first_day: int) -> None:
        self.lossy = {pair for pair in self.lossy if pair[1] >= first_day}

    # -- questions the report asks --

    def watched_days(self, element: str, since: float, until: float | None = None) -> int:
        """On how many days from ``since`` to ``until`` (UTC days, both included; default: no
        end) the element was configured and Switchback was running."""
        first = day_of(since)
        last = day_of(until) if until is not None else None
        days = self.watched.get(element, ())
        return sum(1 for day in days if day >= first and (last is None or day <= last))

    def observed_since(self, ids: Iterable[str]) -> dict[str, float]:
        """Per registered id, since when it is watched (the later of ``since`` and its first
        registration)."""
        return {
            element: max(self.since, first)
            for element in ids
            if (first := self.first_configured.get(element)) is not None
        }

    def observed_in_window(self, ids: Iterable[str], now: float, days: int) -> dict[str, float]:
        """Per registered id, an equivalent "watched since" for the window of ``days`` before
        ``now``: the time since it was first watched, but no more than the days it was actually
        watched (downtime and time out of the config do not count). Day granularity: a day
        counts when it was watched at all."""
        out = {}
        for element, since in self.observed_since(ids).items():
            watched = self.watched_days(element, now - days * DAY, now) * DAY
            out[element] = now - min(now - since, watched)
        return out
