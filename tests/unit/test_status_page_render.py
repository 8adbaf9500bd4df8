"""The status page's HTML from the admin API's JSON: everything clients or config can say is
escaped, the table sorts, the chart breaks its lines where there is no data."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from proxy.admin.chart import analysis_charts
from proxy.admin.page import COLUMNS, render_page

OUR_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "div", "a", "span",
    "form", "button", "table", "thead", "tbody", "tr", "th", "td", "p", "b", "progress",
    "figure", "figcaption", "svg", "line", "text", "polyline", "circle",
}  # fmt: skip


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attrs: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attrs.update(name for name, _ in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def page_with(evil: str, sort: str = "id", order: str = "asc") -> str:
    release = {"url": f"http://{evil}", "weight": 50, "in_flight": 0, "error_rate": 0.0}
    status: dict[str, Any] = {
        "stable": "blue",
        "candidate": evil,
        "releases": {"blue": {**release, "p99_ms": 1.0}, evil: {**release, "p99_ms": None}},
        "pins": {evil: "blue", "a": evil},
        "rollout": {"state": "rolled_back", "step": 0, "steps": [10, 100], "reason": evil},
        "source": evil,
        "out_of_service": evil,
        "persisted": False,
        "persist_error": evil,
        "state_file": evil,
        "uptime_seconds": 5,
        "window_seconds": 60,
    }
    use = {"client": evil, "count": 1, "last_seen_unix": 1e9}
    report = {
        "days": 30,
        "elements": [
            {"id": evil, "kind": "field", "element": evil, "sunset_at": evil, "sunset_at_unix": 1,
             "safe": False, "verdict": evil, "clients": [use]},
            {"id": "b", "kind": "endpoint", "element": "GET /b", "sunset_at": None,
             "sunset_at_unix": None, "safe": True, "verdict": "safe to remove", "clients": []},
        ],
    }  # fmt: skip
    sample = {"at": 1.0, "stable": "blue", "candidate": evil, "releases": status["releases"]}
    history = {"every_seconds": 2, "samples": [sample, {**sample, "at": 3.0}]}
    events = {"events": [{"kind": "rollback", "detail": evil, "at": 1, "last_at": 2, "count": 1}]}
    return render_page(status, history, events, report, sort=sort, order=order, logout=True)


@given(st.text(min_size=1, max_size=30))
def test_nothing_a_client_sends_becomes_markup(evil: str) -> None:
    parsed = Tags()
    parsed.feed(page_with(evil))
    assert parsed.tags <= OUR_TAGS
    assert "onerror" not in parsed.attrs and "onload" not in parsed.attrs


def test_a_script_tag_is_shown_as_text() -> None:
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    html = page_with(evil)
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    parsed = Tags()
    parsed.feed(html)
    assert evil in parsed.text


def test_the_deprecation_table_sorts_by_every_column_both_ways() -> None:
    for key, _, _ in COLUMNS:
        asc = page_with("z", sort=key, order="asc")
        desc = page_with("z", sort=key, order="desc")
        first_asc = asc.index('data-id="z"') < asc.index('data-id="b"')
        first_desc = desc.index('data-id="z"') < desc.index('data-id="b"')
        assert first_asc != first_desc, key
        assert f"sort={key}&amp;order=desc" in asc  # its heading now links to the other way


def test_the_chart_breaks_its_line_where_there_is_no_p99() -> None:
    def sample(at: float, p99: float | None) -> dict[str, Any]:
        stats = {"error_rate": 0.0, "p99_ms": p99}
        return {"at": at, "stable": "blue", "candidate": "green",
                "releases": {"blue": stats, "green": stats}}  # fmt: skip

    svg = analysis_charts([sample(0, 5.0), sample(2, 6.0), sample(4, None), sample(6, 7.0)])
    p99_chart = svg[svg.index("p99 latency") :]
    assert p99_chart.count('class="series-candidate"') == 1  # the run before the gap
    assert p99_chart.count("<circle") == 2  # the lone point after it, for each release
    assert "Not enough samples" in analysis_charts([sample(0, 1.0)])


def test_the_progress_bar_shows_only_while_a_rollout_is_under_way_or_done() -> None:
    def progress(state: str, step: int) -> str | None:
        rollout = {"state": state, "step": step, "steps": [10, 50, 100]}
        html = render_page({"rollout": rollout}, {}, {}, {"elements": []})
        found = re.search(r'<progress id="rollout-progress" value="(\d+)" max="3">', html)
        return found[1] if found else None

    assert progress("idle", 0) is None
    assert progress("rolled_back", 1) is None
    assert progress("ramping", 1) == "2"
    assert progress("paused", 0) == "1"
    assert progress("promoted", 0) == "3"
