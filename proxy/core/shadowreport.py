"""The diff report: which differences between the releases would break a client.

``build_report`` reads a ``DiffBook`` and gives every difference a verdict:

    noise        it also occurs between two answers of the stable release
    compatible   a field added (old clients ignore it)
    expected     a removed field that is a deprecated element (a ``deprecations:`` entry with
                 ``field:`` whose route, if any, matches) no client used in the report window
    breaking     anything else: a status changed, a field removed (a deprecated one that some
                 client still used names them: "breaking for 2 clients: a, b"), a type
                 changed, an array became an object or the reverse, a value changed

Breaking differences come first, then by count. ``recent`` says whether one was last seen
within ``window`` seconds: ``rollout.require_clean_shadow`` refuses a start while any breaking
difference is recent (``breaking_recent``). ``format_table`` is how the CLI prints the JSON.
Pure: usage comes in as ``{deprecation id: [client, ...]}``, ``now`` is passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from proxy.core.jsondiff import COMPATIBLE, FIELD_REMOVED, ROOT, covers
from proxy.core.jsonpaths import parse_path
from proxy.core.report import columns, iso
from proxy.core.rules import Rule
from proxy.core.shadowbook import DiffBook, Entry, Key
from proxy.errors import ShadowNotClean

NOISE = "noise"
COMPATIBLE_VERDICT = "compatible"
EXPECTED = "expected"
BREAKING = "breaking"
_ORDER = {BREAKING: 0, EXPECTED: 1, COMPATIBLE_VERDICT: 2, NOISE: 3}


def deprecated_rule(key: Key, entry: Entry, rules: Sequence[Rule]) -> Rule | None:
    """The response-field deprecation that names this removed field, if any."""
    route, path, kind = key
    if kind != FIELD_REMOVED or not path:
        return None
    try:
        steps = parse_path(path).steps
    except ValueError:
        return None
    ex = entry.example
    raw_path = ex.target.partition("?")[0]
    for rule in rules:
        if rule.kind != "field" or rule.path is None or len(rule.path.steps) != len(steps):
            continue
        if rule.route is not None and not rule.route.matches(ex.method, raw_path):
            continue
        if covers(rule.path.steps, steps):
            return rule
    return None


def verdict(
    key: Key, entry: Entry, book: DiffBook, rules: Sequence[Rule], usage: Mapping[str, list[str]]
) -> dict[str, Any]:
    if key in book.noise:
        return {"verdict": NOISE, "detail": "also differs between two stable answers"}
    if key[2] in COMPATIBLE:
        return {"verdict": COMPATIBLE_VERDICT, "detail": "old clients ignore an added field"}
    rule = deprecated_rule(key, entry, rules)
    if rule is None:
        return {"verdict": BREAKING, "detail": "breaking"}
    clients = sorted(usage.get(rule.id, []))
    if not clients:
        detail = f"deprecated ({rule.id}), no client used it in the report window"
        return {"verdict": EXPECTED, "deprecation": rule.id, "detail": detail}
    detail = f"breaking for {len(clients)} client{'s' if len(clients) != 1 else ''}: "
    return {
        "verdict": BREAKING,
        "deprecation": rule.id,
        "clients": clients,
        "detail": detail + ", ".join(clients),
    }


def build_report(
    book: DiffBook,
    rules: Sequence[Rule],
    usage: Mapping[str, list[str]],
    now: float,
    window: float,
    limit: int | None = 20,
    counts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    rows = []
    for key, entry in book.found.items():
        route, path, kind = key
        rows.append(
            {
                "route": route,
                "path": path or ROOT,
                "kind": kind,
                **verdict(key, entry, book, rules, usage),
                "count": entry.count,
                "first_seen": iso(entry.first_seen),
                "last_seen": iso(entry.last_seen),
                "recent": now - entry.last_seen <= window,
                "example": entry.example.to_json(),
            }
        )
    rows.sort(key=lambda r: (_ORDER[r["verdict"]], -r["count"], r["route"], r["path"]))
    breaking = [r for r in rows if r["verdict"] == BREAKING]
    return {
        "generated_at": iso(now),
        "window_seconds": window,
        **(counts or {}),
        "compared": book.compared,
        "differing": book.differing,
        "noise_compared": book.noise_compared,
        "breaking": len(breaking),
        "breaking_recent": sum(1 for r in breaking if r["recent"]),
        "overflow": book.overflow,
        "differences": rows[:limit],
        "total_differences": len(rows),
    }


def breaking_recent(report: Mapping[str, Any]) -> list[str]:
    """'kind at route path' for each breaking difference seen within the window (of those the
    report lists: build it with a limit that covers them all)."""
    return [
        f"{r['kind']} at {r['route']} {r['path']}"
        for r in report["differences"]
        if r["verdict"] == BREAKING and r["recent"]
    ]


def field_usage(deprecation_report: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{deprecation id: [client, ...]}`` of the response fields, from the deprecation
    report's JSON (``proxy.core.report.report_to_json``): the clients that depend on each, as
    the report's verdict counts them (a client whose field lists always left it out does not)."""
    return {
        e["id"]: [c["client"] for c in e["clients"] if c.get("depends", True)]
        for e in deprecation_report["elements"]
        if e["kind"] == "field"
    }


def require_clean(report: Mapping[str, Any]) -> None:
    """``ShadowNotClean`` naming the breaking differences seen within the window, if any."""
    found = breaking_recent(report)
    if found:
        shown = "; ".join(found[:10]) + (f"; and {len(found) - 10} more" if len(found) > 10 else "")
        raise ShadowNotClean(
            f"rollout.require_clean_shadow: shadow traffic saw {len(found)} breaking "
            f"difference(s) in the last {report['window_seconds']:g} s: {shown} "
            "(switchback diff-report shows them)"
        )


def format_table(report: Mapping[str, Any]) -> str:
    head = (
        f"shadow: {report['compared']} compared, {report['differing']} differing, "
        f"{report['noise_compared']} noise checks, {report['breaking']} breaking "
        f"({report['breaking_recent']} in the last {report['window_seconds']:g} s)"
    )
    rows = report["differences"]
    if not rows:
        return head + "\nno differences\n"
    cells = [["VERDICT", "KIND", "ROUTE", "PATH", "COUNT", "LAST SEEN"]]
    cells += [
        [r["verdict"], r["kind"], r["route"], r["path"], str(r["count"]), r["last_seen"]]
        for r in rows
    ]
    lines = [head, *columns(cells, right=frozenset({4}))]
    for r in rows:
        ex = r["example"]
        lines.append(f"  {r['kind']} {r['route']} {r['path']}: {r['detail']}")
        lines.append(f"    e.g. {ex['method']} {ex['target']} (client {ex['client'] or '-'})")
    return "\n".join(lines) + "\n"
