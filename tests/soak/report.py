"""The soak's figures: what was sent, what the releases injected, what the clients got, the
process's descriptors and memory before and after, and each check with its verdict; printed as
text and saved as JSON."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from tests.soak.faulty_release import FaultyRelease
from tests.soak.load import Record, Tally
from tests.soak.verdict import REQUEST_ID

MIB = 1 << 20
EXAMPLES = 20  # failures of each kind kept with their details (the first 3 are printed)


def what_releases_did(request_id: str, releases: list[FaultyRelease]) -> list[str]:
    return [f"{r.name} {plan}" for r in releases for plan in r.by_id.get(request_id, [])]


def _named(record: Record) -> list[str]:
    """The record's request id, then every other request id its failure names or its
    answer carries."""
    own = record.sent.request_id
    found = REQUEST_ID.findall(record.verdict.detail.encode() + b" " + record.excerpt)
    return [own] + [i for i in dict.fromkeys(m.decode() for m in found) if i != own]


def _cause(record: Record, releases: list[FaultyRelease]) -> str:
    """What the releases did for the request, and for the request whose answer it got when
    that is another one."""
    did = [" + ".join(what_releases_did(i, releases)) or "nothing" for i in _named(record)]
    return did[0] if len(did) == 1 else f"{did[0]}; answer of: {', '.join(did[1:])}"


def failure_causes(tally: Tally, releases: list[FaultyRelease]) -> dict[str, dict[str, int]]:
    """Per failure kind, how often each cause was seen."""
    causes: dict[str, Counter[str]] = {}
    for record in tally.failures():
        causes.setdefault(record.verdict.kind, Counter())[_cause(record, releases)] += 1
    return {kind: dict(c.most_common()) for kind, c in causes.items()}


def failure_examples(tally: Tally, releases: list[FaultyRelease]) -> list[dict[str, Any]]:
    """The first failure of each kind and cause, and more up to ``EXAMPLES`` of each kind, with
    what the releases did for each request they name: the reproduction of the failure."""
    out = []
    shown: Counter[str] = Counter()
    causes: set[tuple[str, str]] = set()
    before: dict[str, list[Record]] = {}  # each client's records, up to the failure
    for record in tally.records:
        client = record.sent.request_id.split("-")[0]
        earlier = before.setdefault(client, [])
        earlier.append(record)
        if not record.verdict.failure:
            continue
        kind, cause = record.verdict.kind, _cause(record, releases)
        if (kind, cause) in causes and shown[kind] >= EXAMPLES:
            continue
        causes.add((kind, cause))
        shown[kind] += 1
        out.append(
            {
                "request": record.sent.request_id,
                "shape": record.sent.shape,
                "failure": kind,
                "cause": cause,
                "detail": record.verdict.detail,
                "releases_did": {i: what_releases_did(i, releases) for i in _named(record)},
                "client_got": repr(record.excerpt),
                "client_before": [
                    f"{r.sent.request_id} {r.verdict.kind}: {_cause(r, releases)}"
                    for r in earlier[-4:-1]
                ],
            }
        )
    return out


def faults(releases: list[FaultyRelease]) -> dict[str, Any]:
    return {
        r.name: {
            "requests": r.requests,
            "faults": dict(sorted(r.faults.items())),
            "faults_total": sum(r.faults.values()),
            "by_variant": dict(sorted(r.variants.items())),
            "incomplete_requests": r.incomplete,
            "malformed_requests": r.malformed[:10],
            "rates": r.rates,
        }
        for r in releases
    }


def render(fig: dict[str, Any]) -> str:
    lines = [
        f"soak: {fig['load_seconds']:g} s of load, {fig['clients']} clients, seed {fig['seed']},"
        f" {fig['duration_seconds']:.1f} s in all",
        f"requests: {fig['requests']['total']} ({fig['requests']['warm_up']} in the warm-up)"
        f"  by shape: {fig['requests']['by_shape']}",
        f"outcomes: {fig['outcomes']}",
        f"misbehaving clients: {fig['rude']}",
    ]
    for name, f in fig["releases"].items():
        lines.append(
            f"{name}: {f['requests']} requests, {f['faults_total']} faults {f['faults']},"
            f" {f['incomplete_requests']} cut requests"
        )
    m = fig["process"]
    lines += [
        f"fds: {m['fds_before']} -> {m['fds_after']} (tolerance {m['fd_tolerance']});"
        f" by kind {m['fd_kinds_before']} -> {m['fd_kinds_after']}",
        f"rss: {m['rss_before'] / MIB:.1f} MiB -> {m['rss_after'] / MIB:.1f} MiB"
        f" (bound +{m['rss_bound'] / MIB:.0f} MiB), peak {m['rss_peak'] / MIB:.1f} MiB",
        "admin: " + ", ".join(f"{a['name']} {a['status']}" for a in fig["admin"]),
        "checks:",
    ]
    for name, check in fig["checks"].items():
        mark = "ok  " if check["ok"] else "FAIL"
        lines.append(f"  {mark} {name}" + ("" if check["ok"] else f": {check['detail']}"))
    for kind, causes in fig["failure_causes"].items():
        lines.append(f"  {kind}: " + "; ".join(f"{n} x {c}" for c, n in causes.items()))
    printed: Counter[str] = Counter()
    for ex in fig["failure_examples"]:
        printed[ex["failure"]] += 1
        if printed[ex["failure"]] > 3:
            continue
        lines.append(
            f"  {ex['failure']} {ex['request']} ({ex['shape']}): {ex['detail']}; releases did"
            f" {ex['releases_did']}; client got {ex['client_got'][:160]}"
        )
    return "\n".join(lines)


def save(fig: dict[str, Any], path: str) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(orjson.dumps(fig, option=orjson.OPT_INDENT_2))
