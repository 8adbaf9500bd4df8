"""The soak's figures: what was sent, what the releases injected, what the clients got, the
process's descriptors and memory before and after, and each check with its verdict; printed as
text and saved as JSON."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from tests.soak.faulty_release import FaultyRelease
from tests.soak.load import Record, Tally

_ID = re.compile(r"\b[wr]\d\d-\d{6}\b")
MIB = 1 << 20
EXAMPLES = 20  # failures of each kind kept with their details (the first 3 are printed)


def what_releases_did(request_id: str, releases: list[FaultyRelease]) -> list[str]:
    return [f"{r.name} {plan}" for r in releases for plan in r.by_id.get(request_id, [])]


def _named(record: Record) -> list[str]:
    """The record's request id, then every other request id its failure names."""
    own = record.sent.request_id
    return [own] + [i for i in dict.fromkeys(_ID.findall(record.verdict.detail)) if i != own]


def failure_causes(tally: Tally, releases: list[FaultyRelease]) -> dict[str, dict[str, int]]:
    """Per failure kind: what the releases did for the request, and for the request whose
    answer it got when that is another one, with how often."""
    causes: dict[str, Counter[str]] = {}
    for record in tally.failures():
        did = [" + ".join(what_releases_did(i, releases)) or "nothing" for i in _named(record)]
        cause = did[0] if len(did) == 1 else f"{did[0]}; answer of: {', '.join(did[1:])}"
        causes.setdefault(record.verdict.kind, Counter())[cause] += 1
    return {kind: dict(c.most_common()) for kind, c in causes.items()}


def failure_examples(tally: Tally, releases: list[FaultyRelease]) -> list[dict[str, Any]]:
    """Up to ``EXAMPLES`` failures of each kind with what the releases did for each request
    they name: the reproduction of the failure."""
    out = []
    shown: Counter[str] = Counter()
    for record in tally.failures():
        kind = record.verdict.kind
        shown[kind] += 1
        if shown[kind] > EXAMPLES:
            continue
        out.append(
            {
                "request": record.sent.request_id,
                "shape": record.sent.shape,
                "failure": kind,
                "detail": record.verdict.detail,
                "releases_did": {i: what_releases_did(i, releases) for i in _named(record)},
                "client_got": repr(record.excerpt),
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
        f"requests: {fig['requests']['total']}  by shape: {fig['requests']['by_shape']}",
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
