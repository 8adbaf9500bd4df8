"""The diff book and the diff report's verdicts (proxy.core.shadowbook, proxy.core.shadowreport)."""

from __future__ import annotations

import datetime as dt

import pytest

from proxy.core.jsondiff import FIELD_ADDED, FIELD_REMOVED, STATUS_CHANGED, Difference
from proxy.core.rules import RuleSet
from proxy.core.shadowbook import OTHER, DiffBook, Example
from proxy.core.shadowreport import (
    breaking_recent,
    build_report,
    field_usage,
    format_table,
    require_clean,
)
from proxy.errors import ShadowNotClean
from proxy.schema import DeprecationConfig

NOW = 1_800_000_000.0
EXAMPLE = Example("GET", "/v1/users/1", (("Authorization", "[redacted]"),), "app1")
RULES = RuleSet.compile(
    [
        DeprecationConfig(id="legacy", field="user.legacy", deprecated=dt.datetime(2026, 1, 1)),
        DeprecationConfig(
            id="v0-role",
            field="user.role",
            on="GET /v0/users/{id}",
            deprecated=dt.datetime(2026, 1, 1),
        ),
    ]
).rules


def _report(book: DiffBook, usage: dict[str, list[str]] | None = None, window: float = 60.0):
    return build_report(book, RULES, usage or {}, NOW, window, None)


def _verdicts(report: dict) -> dict[str, tuple[str, str]]:
    return {r["path"]: (r["verdict"], r["detail"]) for r in report["differences"]}


def test_verdicts_follow_noise_deprecation_and_usage() -> None:
    book = DiffBook()
    diffs = [
        Difference("user.legacy", FIELD_REMOVED),
        Difference("user.role", FIELD_REMOVED),
        Difference("user.roles", FIELD_ADDED),
        Difference("", STATUS_CHANGED),
        Difference("nonce", FIELD_REMOVED),
    ]
    book.record_noise("/v1/users/{id}", [Difference("nonce", FIELD_REMOVED)], EXAMPLE, NOW)
    left = book.record("/v1/users/{id}", diffs, EXAMPLE, NOW)
    assert Difference("nonce", FIELD_REMOVED) not in left and len(left) == 4
    verdicts = _verdicts(_report(book))
    assert verdicts["user.legacy"][0] == "expected"
    assert verdicts["user.role"] == ("breaking", "breaking")  # its rule is for /v0 only
    assert verdicts["user.roles"][0] == "compatible"
    assert verdicts["(body)"][0] == "breaking"
    assert verdicts["nonce"][0] == "noise"
    used = _verdicts(_report(book, {"legacy": ["b", "a"]}))
    assert used["user.legacy"] == ("breaking", "breaking for 2 clients: a, b")


def test_breaking_first_then_by_count_and_the_limit() -> None:
    book = DiffBook()
    for _ in range(3):
        book.record("/a", [Difference("x", FIELD_ADDED)], EXAMPLE, NOW)
    book.record("/b", [Difference("y", FIELD_REMOVED)], EXAMPLE, NOW)
    report = build_report(book, RULES, {}, NOW, 60.0, 1)
    assert [r["path"] for r in report["differences"]] == ["y"]
    assert (report["total_differences"], report["breaking"]) == (2, 1)


def test_only_recent_breaking_differences_refuse_a_start() -> None:
    book = DiffBook()
    book.record("/old", [Difference("a", FIELD_REMOVED)], EXAMPLE, NOW - 120)
    book.record("/new", [Difference("b", FIELD_ADDED)], EXAMPLE, NOW)
    report = _report(book, window=60)
    assert breaking_recent(report) == []
    require_clean(report)
    book.record("/new", [Difference("", STATUS_CHANGED)], EXAMPLE, NOW)
    with pytest.raises(ShadowNotClean, match=r"1 breaking difference\(s\).*status_changed at /new"):
        require_clean(_report(book, window=60))


def test_routes_and_entries_are_bounded() -> None:
    book = DiffBook(max_routes=2, max_entries=3)
    assert [book.route(r) for r in ("/a", "/b", "/c", "/a")] == ["/a", "/b", OTHER, "/a"]
    book.record("/a", [Difference(str(i), FIELD_REMOVED) for i in range(5)], EXAMPLE, NOW)
    assert (len(book.found), book.overflow) == (3, 2)


def test_the_table_shows_each_difference_with_its_example() -> None:
    book = DiffBook()
    book.record("/v1/users/{id}", [Difference("user.legacy", FIELD_REMOVED)], EXAMPLE, NOW)
    text = format_table(_report(book))
    assert "expected  field_removed  /v1/users/{id}  user.legacy" in text
    assert "e.g. GET /v1/users/1 (client app1)" in text
    assert format_table(_report(DiffBook())).endswith("no differences\n")


def test_usage_counts_the_clients_that_depend_as_the_report_does() -> None:
    """A client whose field lists left ``user.legacy`` out received nothing it reads: removing
    the field breaks only the clients the deprecation report says depend on it."""
    report = {
        "elements": [
            {
                "id": "legacy",
                "kind": "field",
                "clients": [
                    {"client": "declares-other-fields", "depends": False},
                    {"client": "reads-it", "depends": True},
                ],
            },
            {"id": "old-endpoint", "kind": "endpoint", "clients": [{"client": "x"}]},
        ]
    }
    assert field_usage(report) == {"legacy": ["reads-it"]}
