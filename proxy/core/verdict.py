"""A rollout's judgement: is the candidate as healthy as the stable release? Pure.

``judge`` compares the candidate's 5xx rate and p99 latency with the stable release's over the
same window (``proxy.core.window.WindowStats``) and answers pass, hold (too few requests: "no
data" is never a pass nor a fail) or fail, with the breach that failed it
(``proxy.core.rollout`` decides what a verdict does in each state).
"""

from __future__ import annotations

import enum
from typing import Literal

import msgspec

from proxy.core.window import WindowStats


class Thresholds(msgspec.Struct, frozen=True, kw_only=True):
    """What ``judge`` needs: how much data, and how bad the candidate may be."""

    min_requests: int  # candidate requests in the window before judging at all
    max_error_rate: float  # 5xx rate floor: breach above max(this, factor x stable's rate)
    error_rate_factor: float
    max_p99_ms: float  # p99 floor: breach above max(this, factor x stable's p99)
    p99_factor: float


class Breach(enum.Enum):
    """Which limit a failing verdict breached; the values label the rollbacks metric."""

    ERROR_RATE = "error_rate"
    LATENCY = "latency"


class Verdict(msgspec.Struct, frozen=True):
    outcome: Literal["pass", "hold", "fail"]
    reason: str
    breach: Breach | None = None  # on "fail": the first limit breached (error rate, latency)


def judge(candidate: WindowStats, stable: WindowStats, t: Thresholds) -> Verdict:
    """Compare the candidate with the stable release over the same window.

    Hold while the candidate has fewer than ``t.min_requests`` requests. Fail when its 5xx rate
    exceeds max(floor, factor x stable's) or its p99 does. Stable's figures only count when it
    has ``t.min_requests`` requests too; otherwise the floors alone apply (never looser).
    """
    if candidate.requests == 0 or candidate.requests < t.min_requests:
        return Verdict("hold", f"{candidate.requests} of {t.min_requests} requests")
    c, s = candidate.release or "candidate", stable.release or "stable"
    compare = stable.requests >= t.min_requests and stable.requests > 0
    breaches: list[tuple[Breach, str]] = []
    err_limit = t.max_error_rate
    err_rule = _pct(t.max_error_rate)
    if compare:
        err_limit = max(err_limit, t.error_rate_factor * stable.error_rate)
        err_rule = f"max({err_rule}, {t.error_rate_factor:g}x {s} {_pct(stable.error_rate)})"
    if candidate.error_rate > err_limit:
        text = f"{c} 5xx rate {_pct(candidate.error_rate)} > {err_rule}"
        breaches.append((Breach.ERROR_RATE, text))
    c_p99 = candidate.p99_ms or 0.0
    p99_limit = t.max_p99_ms
    p99_rule = _ms(t.max_p99_ms)
    if compare and stable.p99_ms is not None:
        p99_limit = max(p99_limit, t.p99_factor * stable.p99_ms)
        p99_rule = f"max({p99_rule}, {t.p99_factor:g}x {s} {_ms(stable.p99_ms)})"
    if c_p99 > p99_limit:
        breaches.append((Breach.LATENCY, f"{c} p99 {_ms(c_p99)} > {p99_rule}"))
    if breaches:
        return Verdict("fail", "; ".join(text for _, text in breaches), breaches[0][0])
    return Verdict(
        "pass",
        f"{c} 5xx rate {_pct(candidate.error_rate)}, p99 {_ms(c_p99)} "
        f"over {candidate.requests} requests",
    )


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _ms(ms: float) -> str:
    return f"{ms:.0f} ms"
