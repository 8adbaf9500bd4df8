"""The deprecation report of a fleet: one answer from the shared ledger, whichever replica asks.

With ``telemetry.ledger`` a PostgreSQL URL, every replica writes its rows to one database, and
the report counts them all: the clients seen by any replica, and an element observed on a day
when any replica watched it that day (and none lost a touch of it).

What the report cannot see yet: rows a replica has not delivered (its spool, while the database
was away). The asking replica counts its own from its spool and memory; of the others it knows
what each wrote to the ``replicas`` table at its last delivery: how many rows it still held and
about which elements. An element such rows are about is not called safe to remove
(``UNDELIVERED``); a replica that cannot reach the database cannot report its spool, so a
replica that stopped writing shows only as an old ``last_write``.

Pure: the ledger reads the database and passes the values in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import Struct

DAY = 86_400.0
UNDELIVERED = "unknown: rows not yet delivered"


class ReplicaState(Struct, frozen=True, kw_only=True):
    """One replica as the ``replicas`` table had it."""

    replica: str
    last_write: float  # unix seconds of its last delivered batch
    unsent_rows: int  # rows its spool still held then
    unsent_elements: tuple[str, ...]  # the elements those rows (or lost touches) are about


def observed_in_window(
    first_configured: Mapping[str, float],
    since: float,
    watched_days: Mapping[str, int],
    ids: Sequence[str],
    now: float,
    days: int,
) -> dict[str, float]:
    """Per registered id, an equivalent "watched since" for the window (as the single-file
    ledger's ``Observation.observed_in_window``): the time since it was first watched, but no
    more than the days some replica watched it in the window (``watched_days``)."""
    out = {}
    for element in ids:
        first = first_configured.get(element)
        if first is None:
            continue
        start = max(since, first)
        watched = watched_days.get(element, 0) * DAY
        out[element] = now - min(now - start, watched)
    return out


def fleet_json(
    replica: str, replicas: Sequence[ReplicaState], own_unsent: int, own_elements: Sequence[str]
) -> dict[str, Any]:
    """The report's ``fleet`` section: who contributed in the window, what is not delivered."""
    others = [r for r in replicas if r.replica != replica]
    undelivered = {r.replica: r.unsent_rows for r in others if r.unsent_rows}
    return {
        "replica": replica,
        "replicas": sorted({r.replica for r in replicas}),
        "contributing": len({r.replica for r in replicas}),
        "own_unsent_rows": own_unsent,  # counted in this report from the local spool
        "own_unsent_elements": list(own_elements),
        "undelivered": undelivered,  # other replicas' rows, not in this report
        "complete": not undelivered,
    }


def hold_undelivered(
    report: dict[str, Any], replica: str, replicas: Sequence[ReplicaState]
) -> dict[str, Any]:
    """Turns "safe to remove" into ``UNDELIVERED`` for every element that another replica's
    undelivered rows are about. Edits and returns ``report`` (the JSON form)."""
    waiting: dict[str, list[str]] = {}
    for r in replicas:
        if r.replica != replica and r.unsent_rows:
            for element in r.unsent_elements:
                waiting.setdefault(element, []).append(r.replica)
    for e in report["elements"]:
        who = waiting.get(e["id"])
        if who and e["safe"]:
            e["safe"] = False
            e["verdict"] = f"{UNDELIVERED} (replica {', '.join(sorted(who))})"
    return report


def fleet_lines(fleet: dict[str, Any] | None) -> list[str]:
    """The table's lines about the fleet (none for a single-file ledger)."""
    if not fleet:
        return []
    names = ", ".join(fleet["replicas"]) or "none"
    lines = ["", f"Fleet: {fleet['contributing']} replica(s) contributed in the window ({names})"]
    if fleet["own_unsent_rows"]:
        lines.append(
            f"  {fleet['replica']} (this replica): {fleet['own_unsent_rows']} row(s) not yet "
            "delivered, counted here from its spool"
        )
    for name, rows in sorted(fleet["undelivered"].items()):
        lines.append(f"  {name}: {rows} row(s) not yet delivered, not in this report")
    return lines


def not_delivered(report: dict[str, Any], element: str) -> bool:
    """Whether an element matching ``element`` (id or text) waits for undelivered rows."""
    return any(
        e["verdict"].startswith(UNDELIVERED)
        for e in report.get("elements") or []
        if element in (e.get("id"), e.get("element"))
    )
