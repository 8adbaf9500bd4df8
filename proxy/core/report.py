"""The deprecation report: which clients still depend on an element, is it safe to remove?

``build_report`` turns the configured deprecations, the ledger's usage rows and how long each
element has been watched into one verdict per element:

    "safe to remove"                      no client touched it in the last ``days`` days, and it
                                          has been watched for at least ``days`` days
    "in use: N clients"                   some client used it or was exposed to it in the window
    "unknown: observed for only X days"   nobody touched it, but it has not been watched long
                                          enough to tell (X rounded down to one decimal)

"Touched" counts both kinds the ledger records: ``use`` (the client sent the element: endpoint,
query parameter, request field) and ``exposure`` (the client received it: response field).

Declared reads: a client that sends a field list (``proxy.deprecation.fields``) says which
fields it reads. Its exposures to a response field are then "read" (named in the list) or
"unread" (left out). A client whose every exposure in the window was "unread", and that never
read nor sent the element, does not depend on it (``UsageRow.depends``): it is listed, but not
counted in "in use", and ``still_used`` ignores it. A client that sent no list on some of its
exposures still counts: nothing says it does not read the field.

``report_to_json`` is the admin API's form (timestamps as ISO-8601 UTC and unix seconds);
``format_table`` and ``still_used`` read that JSON form, because the CLI gets it over HTTP.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from proxy.schema import DeprecationConfig

DAY = 86_400.0
SAFE = "safe to remove"
ELEMENT_KINDS = ("endpoint", "param", "request_field", "field")


class UsageRow(msgspec.Struct, frozen=True, kw_only=True):
    """One client's use of one element over a period (what ``Ledger.usage_since`` returns)."""

    element: str  # the deprecation's id
    client: str  # the full client id
    kinds: tuple[str, ...]  # sorted subset of ("exposure", "read", "unread", "use")
    count: int  # uses and exposures (a read is an exposure too)
    first_seen: float  # unix seconds
    last_seen: float
    # Of the exposures, how many the client's field list named ("read") or left out ("unread").
    exposures: int = 0
    reads: int = 0
    unread: int = 0

    @property
    def declares(self) -> str:
        """ "yes" when every exposure came with a field list, "partly", or "no"."""
        declared = self.reads + self.unread
        if not declared:
            return "no"
        return "yes" if declared >= self.exposures else "partly"

    @property
    def depends(self) -> bool:
        """Whether the client counts as a user: it sent the element, read it, or received it
        at least once without a field list that left it out."""
        return not (self.unread and not self.reads and "use" not in self.kinds
                    and self.exposures <= self.unread)  # fmt: skip


class ElementInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A deprecated element as the report needs it."""

    id: str
    kind: str  # one of ELEMENT_KINDS
    element: str  # the text from config: "user.role", "GET /v0/users/{id}", "page", ...
    deprecated_at: float  # unix seconds
    sunset_at: float | None = None
    replacement: str | None = None

    @classmethod
    def from_config(cls, dep: DeprecationConfig) -> ElementInfo:
        """The element a validated deprecation describes (exactly one kind is set)."""
        kind = next(k for k in ELEMENT_KINDS if getattr(dep, k) is not None)
        return cls(
            id=dep.id,
            kind=kind,
            element=getattr(dep, kind),
            deprecated_at=dep.deprecated.timestamp(),
            sunset_at=dep.sunset.timestamp() if dep.sunset is not None else None,
            replacement=dep.replacement,
        )


class ElementReport(msgspec.Struct, frozen=True, kw_only=True):
    info: ElementInfo
    clients: tuple[UsageRow, ...]  # touched it in the window, most recent first
    observed_since: float | None  # None: never watched
    observed_days: float
    verdict: str
    safe: bool


def build_report(
    elements: Sequence[ElementInfo],
    usage: Sequence[UsageRow],
    observed_since: Mapping[str, float],
    now: float,
    days: int,
) -> list[ElementReport]:
    """One report per element, in the order given.

    ``observed_since[id]`` is when watching the element began (the later of the ledger's first
    opening and the element's first appearance in config); an element missing from it counts as
    never watched. Usage rows older than the window (``last_seen < now - days``) are ignored.
    """
    window_start = now - days * DAY
    by_element: dict[str, list[UsageRow]] = {}
    for row in usage:
        if row.last_seen >= window_start:
            by_element.setdefault(row.element, []).append(row)

    reports = []
    for info in elements:
        rows = sorted(by_element.get(info.id, ()), key=lambda r: (-r.last_seen, r.client))
        since = observed_since.get(info.id)
        observed_days = max(0.0, (now - since) / DAY) if since is not None else 0.0
        users = sum(1 for r in rows if r.depends)
        if users:
            verdict = f"in use: {users} client{'' if users == 1 else 's'}"
        elif observed_days >= days:
            verdict = SAFE
        else:
            # Rounded down, so that 29.96 of 30 days does not read "only 30.0 days".
            verdict = f"unknown: observed for only {math.floor(observed_days * 10) / 10:.1f} days"
        reports.append(
            ElementReport(
                info=info,
                clients=tuple(rows),
                observed_since=since,
                observed_days=observed_days,
                verdict=verdict,
                safe=verdict == SAFE,
            )
        )
    return reports


def iso(ts: float) -> str:
    """Unix seconds as ISO-8601 UTC, to the second: ``2025-06-01T12:00:00Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(name: str, ts: float | None) -> dict[str, Any]:
    return {name: iso(ts) if ts is not None else None, f"{name}_unix": ts}


def report_to_json(reports: Sequence[ElementReport], now: float, days: int) -> dict[str, Any]:
    """The report as the admin API returns it; every timestamp twice, ISO-8601 and unix."""
    return {
        **_stamp("generated_at", now),
        "days": days,
        "elements": [
            {
                "id": r.info.id,
                "kind": r.info.kind,
                "element": r.info.element,
                "replacement": r.info.replacement,
                **_stamp("deprecated_at", r.info.deprecated_at),
                **_stamp("sunset_at", r.info.sunset_at),
                **_stamp("observed_since", r.observed_since),
                "observed_days": round(r.observed_days, 3),
                "safe": r.safe,
                "verdict": r.verdict,
                "clients": [
                    {
                        "client": u.client,
                        "count": u.count,
                        "kinds": list(u.kinds),
                        "depends": u.depends,
                        "declares": u.declares,
                        "exposures": u.exposures,
                        "reads": u.reads,
                        **_stamp("first_seen", u.first_seen),
                        **_stamp("last_seen", u.last_seen),
                    }
                    for u in r.clients
                ],
            }
            for r in reports
        ],
    }


def columns(
    rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset(), indent: str = ""
) -> list[str]:
    """Rows of cells as lines, columns two spaces apart; those in ``right`` are right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        indent
        + "  ".join(
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]


def format_table(report_json: dict[str, Any]) -> str:
    """The report for a terminal: one line per element, then the clients that touched it."""
    elements = report_json["elements"]
    days, at = report_json["days"], report_json["generated_at"]
    header = f"Deprecated elements, last {days} days (at {at})"
    if not elements:
        return header + "\nNo deprecated elements configured.\n"
    rows = [["ID", "KIND", "ELEMENT", "SUNSET", "VERDICT"]]
    for e in elements:
        sunset = e["sunset_at"][:10] if e["sunset_at"] else "-"
        rows.append([e["id"], e["kind"], e["element"], sunset, e["verdict"]])
    lines = [header, "", *columns(rows)]
    from proxy.core.enforcement_report import enforcement_lines  # it imports this module

    lines += enforcement_lines(report_json.get("enforcement"))
    from proxy.core.fleetreport import fleet_lines

    lines += fleet_lines(report_json.get("fleet"))
    for e in elements:
        if not e["clients"]:
            continue
        declaring = any(c.get("declares", "no") != "no" for c in e["clients"])
        client_rows = [["CLIENT", "COUNT", "KINDS", "LAST SEEN"]]
        if declaring:  # some client sends field lists: its reads against its exposures
            client_rows[0] += ["DECLARES", "READ/EXPOSED", "DEPENDS"]
        for c in e["clients"]:
            kinds = ",".join(k for k in c["kinds"] if k in ("use", "exposure"))
            row = [c["client"], str(c["count"]), kinds, c["last_seen"]]
            if declaring:
                read = f"{c['reads']}/{c['exposures']}" if c["declares"] != "no" else "-"
                row += [c["declares"], read, "yes" if c["depends"] else "no"]
            client_rows.append(row)
        lines += ["", f"{e['id']} ({e['element']}): {e['verdict']}"]
        lines += columns(client_rows, frozenset({1}), indent="  ")
    return "\n".join(lines) + "\n"


def still_used(report_json: dict[str, Any], element: str) -> bool | None:
    """Whether any client depends on ``element`` (an id or an element text) in the report's
    window: touched it, unless its field lists left it out every time (``UsageRow.depends``).

    None when no element matches. When the text matches several deprecations (the same field
    deprecated on two endpoints), any one in use counts.
    """
    matches = [e for e in report_json["elements"] if element in (e["id"], e["element"])]
    if not matches:
        return None
    return any(c.get("depends", True) for e in matches for c in e["clients"])
