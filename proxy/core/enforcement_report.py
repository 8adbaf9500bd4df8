"""What the status and the report say about enforcement: which elements are switched off, which
brownout is under way, which comes next. Pure: ``now`` is passed in.

``enforcement_json`` is the admin API's form (in GET /status and GET /deprecations, key
``enforcement``: one entry per deprecation that sets ``enforce: after_sunset`` or
``brownouts``); ``enforcement_lines`` reads that JSON form for a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from proxy.core.enforcement import Window, active_window, compile_policy, enforced_now, next_window
from proxy.core.report import ELEMENT_KINDS, columns, iso
from proxy.schema import DeprecationConfig


def enforcement_json(deprecations: Sequence[DeprecationConfig], now: float) -> list[dict[str, Any]]:
    out = []
    for dep in deprecations:
        policy = compile_policy(dep)
        if policy is None:
            continue
        kind = next(k for k in ELEMENT_KINDS if getattr(dep, k) is not None)
        out.append(
            {
                "id": dep.id,
                "kind": kind,
                "element": getattr(dep, kind),
                "enforce": dep.enforce,
                "enforced": enforced_now(policy, now),
                "sunset_at": None if dep.sunset is None else iso(dep.sunset.timestamp()),
                "exempt": sorted(policy.exempt),
                "brownout_now": _window(active_window(policy, now)),
                "next_brownout": _window(next_window(policy, now)),
            }
        )
    return out


def _window(found: tuple[Window, tuple[int, int]] | None) -> dict[str, Any] | None:
    if found is None:
        return None
    window, (start, end) = found
    return {"start": iso(start), "end": iso(end), "percent": window.percent}


def enforcement_lines(entries: Any) -> list[str]:
    """The ``enforcement`` entries of a status or report answer as table lines after an
    empty one (none: no lines)."""
    if not isinstance(entries, list) or not entries:
        return []
    rows = [["ENFORCED", "ELEMENT", "STATE", "NEXT BROWNOUT"]]
    for e in entries:
        rows.append([e["id"], e["element"], _state(e), _describe(e.get("next_brownout"))])
    return ["", *columns(rows)]


def _state(e: dict[str, Any]) -> str:
    exempt = f" (exempt: {', '.join(e['exempt'])})" if e.get("exempt") else ""
    if e.get("enforced"):
        return f"switched off since the sunset {e['sunset_at']}{exempt}"
    now = e.get("brownout_now")
    if now:
        return f"brownout now, until {now['end']} ({now['percent']:g}%){exempt}"
    if e.get("enforce") == "after_sunset":
        return f"switched off at the sunset {e['sunset_at']}{exempt}"
    return "brownouts only" + exempt


def _describe(window: dict[str, Any] | None) -> str:
    if not window:
        return "-"
    return f"{window['start']} to {window['end']} ({window['percent']:g}%)"
