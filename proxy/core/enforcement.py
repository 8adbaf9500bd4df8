"""Sunset enforcement and brownouts: is a deprecated element refused for this request, now?

Pure: ``now`` (unix seconds) is always passed in, never read. One ``Policy`` per deprecation
that sets ``enforce: after_sunset`` or ``brownouts`` (the others have none, and cost nothing):

    verdict(policy, client, now) -> None | "sunset" | "brownout"

1. a client in ``exempt`` is never refused;
2. after the sunset, with ``enforce: after_sunset``: ``"sunset"``;
3. inside a brownout window whose ``percent`` selects the client: ``"brownout"``.

Windows are one-off (``start`` <= now < ``end``) or recurring in UTC, daily or weekly: an
occurrence starts at ``at`` on every day (or the given weekday) and lasts ``for``; it may run
across midnight or the end of the week. A recurring window is a period and an offset from the
epoch (a Thursday, 00:00 UTC), so the occurrence covering ``now`` is one division.

``percent`` picks clients, not requests: a client's bucket (BLAKE2b of the element id and the
client id, 0..9999, as ``proxy.core.routing`` hashes for stickiness) is the same in every window
of the element and on every replica, so a client that was refused once is refused again for
the whole window (and in the next one) and can reproduce what it saw; raising the percentage
only adds clients.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from proxy.schema import BrownoutConfig, DeprecationConfig

Reason = Literal["sunset", "brownout"]
DAY = 86_400
WEEK = 7 * DAY
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday
_AT = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


@dataclass(frozen=True, slots=True)
class Window:
    """A brownout window: one-off (``period`` 0: ``offset`` is its start) or recurring
    (occurrences start at ``offset + k * period``). Seconds; ``length`` > 0."""

    offset: int
    length: int
    period: int  # 0: one-off, DAY or WEEK
    percent: float  # 0 < percent <= 100

    def occurrence(self, now: float) -> tuple[int, int] | None:
        """The occurrence covering ``now`` as (start, end), end excluded; None when none does."""
        start = self._latest_start(now)
        if start <= now < start + self.length:
            return start, start + self.length
        return None

    def next_occurrence(self, now: float) -> tuple[int, int] | None:
        """The occurrence covering ``now``, else the next to start; None when none will."""
        current = self.occurrence(now)
        if current is not None:
            return current
        if not self.period:
            return (self.offset, self.offset + self.length) if now < self.offset else None
        start = self._latest_start(now) + self.period
        return start, start + self.length

    def _latest_start(self, now: float) -> int:
        """The start of the latest occurrence at or before ``now`` (one-off: its start)."""
        if not self.period:
            return self.offset
        return self.offset + int((now - self.offset) // self.period) * self.period


@dataclass(frozen=True, slots=True)
class Policy:
    """How one deprecated element is enforced (compiled from its config entry)."""

    id: str
    after_sunset: bool
    sunset_at: int | None
    windows: tuple[Window, ...]
    exempt: frozenset[str]


def bucket(element_id: str, client_id: str) -> int:
    """0..9999, the same for a client and an element everywhere (see the module docstring)."""
    key = f"{element_id}\x00{client_id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % 10_000


def selected(element_id: str, client_id: str, percent: float) -> bool:
    return percent >= 100 or bucket(element_id, client_id) < round(percent * 100)


def verdict(policy: Policy, client_id: str, now: float) -> Reason | None:
    """Why the element is refused to ``client_id`` at ``now``, or None when it is not."""
    if client_id in policy.exempt:
        return None
    if policy.after_sunset and policy.sunset_at is not None and now >= policy.sunset_at:
        return "sunset"
    for window in policy.windows:
        if window.occurrence(now) is not None and selected(policy.id, client_id, window.percent):
            return "brownout"
    return None


def active_window(policy: Policy, now: float) -> tuple[Window, tuple[int, int]] | None:
    """The first window with an occurrence covering ``now`` (for any client)."""
    for window in policy.windows:
        occurrence = window.occurrence(now)
        if occurrence is not None:
            return window, occurrence
    return None


def next_window(policy: Policy, now: float) -> tuple[Window, tuple[int, int]] | None:
    """The window occurrence that starts next after ``now`` (not one under way)."""
    upcoming = []
    for window in policy.windows:
        occurrence = window.next_occurrence(now)
        if occurrence is not None and occurrence[0] > now:
            upcoming.append((occurrence, window))
        elif occurrence is not None and window.period:  # under way: the one after it
            start = occurrence[0] + window.period
            upcoming.append(((start, start + window.length), window))
    if not upcoming:
        return None
    occurrence, window = min(upcoming, key=lambda item: item[0])
    return window, occurrence


def enforced_now(policy: Policy, now: float) -> bool:
    """Whether the element is switched off for every client not exempt (sunset passed)."""
    return policy.after_sunset and policy.sunset_at is not None and now >= policy.sunset_at


# -- from config ----------------------------------------------------------------------------------


def compile_policy(dep: DeprecationConfig) -> Policy | None:
    """The policy of a validated entry (``brownout_problems`` found nothing); None when the
    entry neither enforces its sunset nor has brownouts."""
    if dep.enforce == "never" and not dep.brownouts:
        return None
    return Policy(
        id=dep.id,
        after_sunset=dep.enforce == "after_sunset",
        sunset_at=None if dep.sunset is None else int(dep.sunset.timestamp()),
        windows=tuple(compile_window(b) for b in dep.brownouts),
        exempt=frozenset(dep.exempt),
    )


def compile_window(b: BrownoutConfig) -> Window:
    """A validated brownout as a ``Window`` (``ValueError`` when it is not valid)."""
    problems = brownout_problems(b)
    if problems:
        key, value, problem = problems[0]
        raise ValueError(f"{key}: {value!r} {problem}")
    if b.start is not None and b.end is not None:
        start = int(b.start.timestamp())
        return Window(start, int(b.end.timestamp()) - start, 0, b.percent)
    m = _AT.fullmatch(b.at or "")
    length = parse_duration(b.for_ or "")
    if m is None or not length:  # ruled out by brownout_problems
        raise ValueError("a recurring window needs every, at and for")
    minute = int(m.group(1)) * 3600 + int(m.group(2)) * 60
    if b.every == "day":
        return Window(minute, length, DAY, b.percent)
    day = (WEEKDAYS.index(b.every) - _EPOCH_WEEKDAY) % 7
    return Window(day * DAY + minute, length, WEEK, b.percent)


def parse_duration(text: str) -> int | None:
    """``15m``, ``1h30m``, ``90s``, ``2d`` as seconds; None when ``text`` is none of these."""
    m = _DURATION.fullmatch(text.strip())
    if m is None or not any(m.groups()):
        return None
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def brownout_problems(b: BrownoutConfig) -> list[tuple[str, object, str]]:
    """What is wrong with one brownout, as (key, value, problem); empty when it is valid."""
    out: list[tuple[str, object, str]] = []
    if not 0 < b.percent <= 100:
        out.append(("percent", b.percent, "is not a percentage above 0 (0 < percent <= 100)"))
    one_off = (b.start, b.end)
    recurring = (b.every, b.at, b.for_)
    if any(v is not None for v in one_off) and any(v is not None for v in recurring):
        out.append(("every", b.every or b.at or b.for_, "is not allowed beside start/end"))
        return out
    if any(v is not None for v in one_off):
        if b.start is None or b.end is None:
            missing = "start" if b.start is None else "end"
            out.append((missing, None, "is missing: a one-off window has start and end"))
        elif b.end <= b.start:
            out.append(("end", b.end, f"is not after start ({b.start.isoformat()})"))
        return out
    if all(v is None for v in recurring):
        out.append(("start", None, "is missing: give start and end, or every, at and for"))
        return out
    for key, value in (("every", b.every), ("at", b.at), ("for", b.for_)):
        if value is None:
            out.append((key, None, "is missing: a recurring window has every, at and for"))
    if b.every is not None and b.every not in ("day", *WEEKDAYS):
        out.append(("every", b.every, "is not day or a weekday (monday ... sunday)"))
    if b.at is not None and not _AT.fullmatch(b.at):
        out.append(("at", b.at, 'is not a time of day in UTC, "HH:MM" (e.g. "14:00")'))
    if b.for_ is not None:
        length = parse_duration(b.for_)
        period = DAY if b.every == "day" else WEEK
        if not length:
            out.append(("for", b.for_, "is not a positive duration (e.g. 15m, 1h, 90s)"))
        elif length > period:
            out.append(("for", b.for_, f"is longer than the period ({period // DAY} days)"))
    return out
