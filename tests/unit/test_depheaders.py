import datetime as dt
import re
from typing import Any

import pytest

from proxy.core.deprecation_headers import deprecation_headers, imf_fixdate
from proxy.core.rules import Rule, RuleSet
from proxy.schema import DeprecationConfig

UTC = dt.UTC
IMF_FIXDATE = re.compile(
    rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"\d{4} \d\d:\d\d:\d\d GMT"
)


def rules(*entries: dict[str, Any]) -> tuple[Rule, ...]:
    configs = []
    for i, kw in enumerate(entries):
        kw.setdefault("field", f"f{i}")
        kw.setdefault("deprecated", dt.datetime(2026, 6, 1, tzinfo=UTC))
        configs.append(DeprecationConfig(id=f"r{i}", **kw))
    return RuleSet.compile(configs).rules


def names(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [name for name, _ in headers]


def test_one_rule_all_headers() -> None:
    got = deprecation_headers(
        rules(
            dict(
                field="user.role",
                sunset=dt.datetime(2027, 1, 1, tzinfo=UTC),
                link="https://api.example.com/changes#user-role",
                sunset_link="https://api.example.com/sunset",
                replacement="user.roles",
            )
        ),
        [(b"Content-Type", b"application/json")],
        warning=True,
    )
    assert got == [
        (b"Deprecation", b"@1780272000"),
        (b"Sunset", b"Fri, 01 Jan 2027 00:00:00 GMT"),
        (
            b"Link",
            b'<https://api.example.com/changes#user-role>; rel="deprecation", '
            b'<https://api.example.com/sunset>; rel="sunset"',
        ),
        (b"Warning", b'299 - "deprecated: user.role (use user.roles)"'),
    ]


def test_syntax_of_dates() -> None:
    got = dict(
        deprecation_headers(
            rules(
                dict(
                    deprecated=dt.datetime(2026, 3, 5, 7, 8, 9, tzinfo=UTC),
                    sunset=dt.datetime(2026, 12, 24, 23, 59, 59, tzinfo=UTC),
                )
            ),
            [],
            warning=False,
        )
    )
    assert re.fullmatch(rb"@\d+", got[b"Deprecation"])
    assert re.fullmatch(IMF_FIXDATE, got[b"Sunset"])
    assert got[b"Sunset"] == b"Thu, 24 Dec 2026 23:59:59 GMT"
    assert imf_fixdate(784111777) == b"Sun, 06 Nov 1994 08:49:37 GMT"  # RFC 9110's example


def test_earliest_dates_win_and_exactly_one_of_each() -> None:
    got = deprecation_headers(
        rules(
            dict(deprecated=dt.datetime(2026, 6, 1, tzinfo=UTC)),
            dict(
                deprecated=dt.datetime(2025, 1, 1, tzinfo=UTC),
                sunset=dt.datetime(2027, 6, 1, tzinfo=UTC),
            ),
            dict(
                deprecated=dt.datetime(2026, 1, 1, tzinfo=UTC),
                sunset=dt.datetime(2026, 9, 1, tzinfo=UTC),
            ),
        ),
        [],
        warning=False,
    )
    assert got == [
        (b"Deprecation", b"@1735689600"),
        (b"Sunset", b"Tue, 01 Sep 2026 00:00:00 GMT"),
    ]


def test_no_sunset_no_links_no_warning() -> None:
    assert names(deprecation_headers(rules({}), [], warning=False)) == [b"Deprecation"]
    assert deprecation_headers((), [(b"Deprecation", b"@1")], warning=True) == []


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        ([(b"deprecation", b"@1")], [b"Sunset", b"Link"]),
        ([(b"SUNSET", b"Thu, 01 Jan 2026 00:00:00 GMT")], [b"Deprecation", b"Link"]),
        ([(b"Deprecation", b"@1"), (b"Sunset", b"x")], [b"Link"]),
    ],
)
def test_the_apps_own_headers_are_kept_not_duplicated(
    existing: list[tuple[bytes, bytes]], expected: list[bytes]
) -> None:
    got = deprecation_headers(
        rules(dict(sunset=dt.datetime(2027, 1, 1, tzinfo=UTC), link="https://d.example/a")),
        existing,
        warning=False,
    )
    assert names(got) == expected


def test_links_are_distinct_in_rule_order() -> None:
    got = dict(
        deprecation_headers(
            rules(
                dict(link="https://d.example/b", sunset_link="https://s.example/1"),
                dict(link="https://d.example/a"),
                dict(link="https://d.example/b", sunset_link="https://s.example/1"),
                dict(sunset_link="https://d.example/a"),  # same URL, other relation: kept
            ),
            [],
            warning=False,
        )
    )
    assert got[b"Link"] == (
        b'<https://d.example/b>; rel="deprecation", <https://d.example/a>; rel="deprecation", '
        b'<https://s.example/1>; rel="sunset", <https://d.example/a>; rel="sunset"'
    )


@pytest.mark.parametrize(
    "app_link",
    [
        b'<https://d.example/a>; rel="deprecation"',
        b"<https://d.example/a>;rel=deprecation",
        b'<https://x.example/>; rel="next", <https://d.example/a> ; REL="Deprecation"',
        b'<https://d.example/a>; title="a, b; rel=x"; rel="alternate deprecation"',
    ],
)
def test_links_the_app_sent_are_not_repeated(app_link: bytes) -> None:
    got = deprecation_headers(
        rules(dict(link="https://d.example/a", sunset_link="https://s.example/1")),
        [(b"Link", app_link)],
        warning=False,
    )
    assert dict(got)[b"Link"] == b'<https://s.example/1>; rel="sunset"'


@pytest.mark.parametrize(
    "app_link",
    [
        b'<https://d.example/a>; rel="sunset"',  # other relation
        b'<https://d.example/a/>; rel="deprecation"',  # other target
        b'<https://d.example/a>; title="rel=deprecation"',  # inside a quoted string
        b'<https://d.example/a>; rel="next"; rel="deprecation"',  # only the first rel counts
    ],
)
def test_links_that_differ_are_still_added(app_link: bytes) -> None:
    got = deprecation_headers(
        rules(dict(link="https://d.example/a")), [(b"Link", app_link)], warning=False
    )
    assert dict(got)[b"Link"] == b'<https://d.example/a>; rel="deprecation"'


def test_no_link_header_when_the_app_sent_them_all() -> None:
    got = deprecation_headers(
        rules(dict(link="https://d.example/a")),
        [(b"link", b'<https://d.example/a>; rel="deprecation"')],
        warning=False,
    )
    assert names(got) == [b"Deprecation"]


def test_warning_lists_elements_once_with_replacements_and_escapes() -> None:
    got = dict(
        deprecation_headers(
            rules(
                dict(field="user.role", replacement="user.roles"),
                dict(field=None, param="sort_by"),
                dict(field="user.role", replacement="user.roles"),
                dict(field=None, param='say "hi"'),
                dict(field=None, param="a\\b"),
                dict(field=None, param="tab\there\nnewline"),  # HTAB stays, CR/LF cannot
            ),
            [],
            warning=True,
        )
    )
    assert got[b"Warning"] == (
        rb'299 - "deprecated: user.role (use user.roles), sort_by, say \"hi\", a\\b, tab'
        + b"\t"
        + rb'herenewline"'
    )
