import datetime as dt

import pytest

from proxy.core.report import (
    ElementInfo,
    UsageRow,
    build_report,
    format_table,
    iso,
    report_to_json,
    still_used,
)
from proxy.schema import DeprecationConfig

DAY = 86_400.0
NOW = 1_750_000_000.0  # 2025-06-15T15:06:40Z

ROLE = ElementInfo(
    id="user-role",
    kind="field",
    element="user.role",
    deprecated_at=NOW - 90 * DAY,
    sunset_at=NOW + 60 * DAY,
    replacement="user.roles",
)
PAGE = ElementInfo(id="page-param", kind="param", element="page", deprecated_at=NOW - 90 * DAY)
LEGACY = ElementInfo(
    id="legacy-get", kind="endpoint", element="GET /v0/users/{id}", deprecated_at=NOW - DAY
)
ELEMENTS = [ROLE, PAGE, LEGACY]


def usage(
    element: str, client: str, last_seen: float, count: int = 1, reads: int = 0, unread: int = 0
) -> UsageRow:
    kinds = {"exposure"} | ({"read"} if reads else set()) | ({"unread"} if unread else set())
    return UsageRow(
        element=element,
        client=client,
        kinds=tuple(sorted(kinds)),
        count=count,
        first_seen=last_seen - 3600,
        last_seen=last_seen,
        exposures=count,
        reads=reads,
        unread=unread,
    )


USAGE = [
    usage("user-role", "batch-job", NOW - 5 * DAY, count=3),
    usage("user-role", "mobile-ios", NOW - 60, count=120),
    usage("page-param", "web", NOW - 31 * DAY),  # outside the 30-day window
]
OBSERVED = {
    "user-role": NOW - 100 * DAY,
    "page-param": NOW - 30 * DAY,  # exactly the window: long enough
    "legacy-get": NOW - 12.36 * DAY,
}


def test_verdicts() -> None:
    reports = build_report(ELEMENTS, USAGE, OBSERVED, NOW, days=30)
    assert [(r.info.id, r.verdict, r.safe) for r in reports] == [
        ("user-role", "in use: 2 clients", False),
        ("page-param", "safe to remove", True),
        ("legacy-get", "unknown: observed for only 12.3 days", False),
    ]


def test_clients_most_recent_first_and_window_applies() -> None:
    role, page, _ = build_report(ELEMENTS, USAGE, OBSERVED, NOW, days=30)
    assert [(u.client, u.count) for u in role.clients] == [("mobile-ios", 120), ("batch-job", 3)]
    assert page.clients == ()
    (page,) = build_report([PAGE], USAGE, OBSERVED, NOW, days=40)
    assert page.verdict == "in use: 1 client"


def test_unwatched_element_is_never_safe() -> None:
    (report,) = build_report([PAGE], [], {}, NOW, days=30)
    assert (report.verdict, report.safe) == ("unknown: observed for only 0.0 days", False)


def test_observed_days_round_down_so_unknown_never_reads_as_the_full_window() -> None:
    (report,) = build_report([PAGE], [], {"page-param": NOW - 29.99 * DAY}, NOW, days=30)
    assert report.verdict == "unknown: observed for only 29.9 days"


def test_json_has_iso_and_unix_timestamps() -> None:
    doc = report_to_json(build_report(ELEMENTS, USAGE, OBSERVED, NOW, days=30), NOW, 30)
    assert doc["generated_at"] == "2025-06-15T15:06:40Z"
    assert doc["generated_at_unix"] == NOW
    assert doc["days"] == 30
    role = doc["elements"][0]
    assert role["sunset_at"] == iso(NOW + 60 * DAY) == "2025-08-14T15:06:40Z"
    assert role["sunset_at_unix"] == NOW + 60 * DAY
    assert role["replacement"] == "user.roles"
    assert role["clients"][0] == {
        "client": "mobile-ios",
        "count": 120,
        "kinds": ["exposure"],
        "depends": True,
        "declares": "no",
        "exposures": 120,
        "reads": 0,
        "first_seen": "2025-06-15T14:05:40Z",
        "first_seen_unix": NOW - 3660,
        "last_seen": "2025-06-15T15:05:40Z",
        "last_seen_unix": NOW - 60,
    }
    assert doc["elements"][1]["sunset_at"] is None


def test_table_names_every_client_and_verdict() -> None:
    doc = report_to_json(build_report(ELEMENTS, USAGE, OBSERVED, NOW, days=30), NOW, 30)
    table = format_table(doc)
    for text in [
        "mobile-ios",
        "batch-job",
        "in use: 2 clients",
        "safe to remove",
        "unknown: observed for only 12.3 days",
        "2025-08-14",
        "GET /v0/users/{id}",
    ]:
        assert text in table
    assert "web" not in table  # used only before the window
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("ID"))
    verdict_col = header.index("VERDICT")
    for element in ("user-role", "page-param", "legacy-get"):
        row = next(line for line in lines if line.startswith(element + " "))
        assert row[verdict_col - 2 : verdict_col] == "  "  # columns line up
        assert row[verdict_col] != " "


def test_table_without_elements() -> None:
    assert "No deprecated elements" in format_table(report_to_json([], NOW, 30))


@pytest.mark.parametrize(
    ("element", "expected"),
    [
        ("user-role", True),
        ("user.role", True),
        ("page", False),
        ("legacy-get", False),
        ("user.email", None),
    ],
)
def test_still_used_matches_id_or_element_text(element: str, expected: bool | None) -> None:
    doc = report_to_json(build_report(ELEMENTS, USAGE, OBSERVED, NOW, days=30), NOW, 30)
    assert still_used(doc, element) is expected


def test_element_info_from_config() -> None:
    dep = DeprecationConfig(
        id="user-role",
        field="user.role",
        deprecated=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        sunset=dt.datetime(2025, 9, 1, tzinfo=dt.UTC),
        replacement="user.roles",
    )
    info = ElementInfo.from_config(dep)
    assert (info.kind, info.element, info.replacement) == ("field", "user.role", "user.roles")
    assert iso(info.deprecated_at) == "2025-01-01T00:00:00Z"
    assert info.sunset_at is not None and iso(info.sunset_at) == "2025-09-01T00:00:00Z"
    endpoint = DeprecationConfig(
        id="legacy",
        endpoint="GET /v0/users/{id}",
        deprecated=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    )
    assert ElementInfo.from_config(endpoint).kind == "endpoint"


# -- declared reads ------------------------------------------------------------------------

DECLARING = [
    usage("user-role", "reads-it", NOW - 60, count=4, reads=4),
    usage("user-role", "leaves-it-out", NOW - 60, count=5, unread=5),
    usage("user-role", "sometimes-no-list", NOW - 60, count=5, unread=3),
]


def test_a_client_whose_lists_left_the_field_out_is_not_a_user() -> None:
    (role,) = build_report([ROLE], DECLARING, OBSERVED, NOW, days=30)
    depends = {r.client: (r.declares, r.depends) for r in role.clients}
    assert depends == {
        "reads-it": ("yes", True),
        "leaves-it-out": ("yes", False),
        "sometimes-no-list": ("partly", True),  # two exposures came without a list
    }
    assert role.verdict == "in use: 2 clients"


def test_only_clients_that_left_it_out_make_it_safe_and_not_used() -> None:
    rows = [DECLARING[1]]
    (role,) = build_report([ROLE], rows, OBSERVED, NOW, days=30)
    assert (role.verdict, role.safe) == ("safe to remove", True)
    doc = report_to_json([role], NOW, 30)
    assert still_used(doc, "user.role") is False
    assert doc["elements"][0]["clients"][0]["client"] == "leaves-it-out"  # still listed


def test_table_shows_reads_against_exposures_for_declaring_clients() -> None:
    doc = report_to_json(build_report([ROLE], DECLARING, OBSERVED, NOW, days=30), NOW, 30)
    table = format_table(doc)
    assert "READ/EXPOSED" in table and "DEPENDS" in table
    line = next(row for row in table.splitlines() if "leaves-it-out" in row)
    assert line.split()[-3:] == ["yes", "0/5", "no"]
    line = next(row for row in table.splitlines() if "reads-it" in row)
    assert line.split()[-3:] == ["yes", "4/4", "yes"]


def test_the_table_of_clients_without_lists_keeps_its_columns() -> None:
    doc = report_to_json(build_report(ELEMENTS, USAGE, OBSERVED, NOW, days=30), NOW, 30)
    assert "DECLARES" not in format_table(doc)
