"""The pure enforcement decision (proxy.core.enforcement), with the clock passed in."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config.load import parse_config
from proxy.core.enforcement import (
    DAY,
    WEEK,
    Policy,
    Window,
    active_window,
    brownout_problems,
    bucket,
    compile_policy,
    compile_window,
    next_window,
    parse_duration,
    verdict,
)
from proxy.core.enforcement_report import enforcement_json, enforcement_lines
from proxy.errors import ConfigError
from proxy.schema import BrownoutConfig, DeprecationConfig


def ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())


def policy(*windows: Window, sunset: str | None = None, exempt: tuple[str, ...] = ()) -> Policy:
    return Policy(
        id="old",
        after_sunset=sunset is not None,
        sunset_at=None if sunset is None else ts(sunset),
        windows=windows,
        exempt=frozenset(exempt),
    )


def one_off(start: str, end: str, percent: float = 100) -> Window:
    return compile_window(
        BrownoutConfig(
            start=dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC),
            end=dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC),
            percent=percent,
        )
    )


def recurring(every: str, at: str, length: str, percent: float = 100) -> Window:
    return compile_window(BrownoutConfig(every=every, at=at, for_=length, percent=percent))


def test_sunset_passed_or_not() -> None:
    p = policy(sunset="2026-06-01T00:00:00")
    assert verdict(p, "a", ts("2026-05-31T23:59:59")) is None
    assert verdict(p, "a", ts("2026-06-01T00:00:00")) == "sunset"
    never = Policy("old", False, ts("2026-06-01T00:00:00"), (), frozenset())
    assert verdict(never, "a", ts("2027-01-01T00:00:00")) is None


def test_one_off_window_start_included_end_excluded() -> None:
    p = policy(one_off("2026-03-03T14:00:00", "2026-03-03T14:15:00"))
    assert verdict(p, "a", ts("2026-03-03T13:59:59")) is None
    assert verdict(p, "a", ts("2026-03-03T14:00:00")) == "brownout"
    assert verdict(p, "a", ts("2026-03-03T14:14:59")) == "brownout"
    assert verdict(p, "a", ts("2026-03-03T14:15:00")) is None
    before = next_window(p, ts("2026-03-01T00:00:00"))
    assert before is not None and before[1] == (
        ts("2026-03-03T14:00:00"),
        ts("2026-03-03T14:15:00"),
    )
    assert next_window(p, ts("2026-03-03T14:05:00")) is None  # under way: none after it
    assert next_window(p, ts("2026-03-04T00:00:00")) is None


def test_weekly_window_on_its_weekday_only() -> None:
    p = policy(recurring("tuesday", "14:00", "15m"))
    assert verdict(p, "a", ts("2026-03-03T14:10:00")) == "brownout"  # a Tuesday
    assert verdict(p, "a", ts("2026-03-04T14:10:00")) is None  # Wednesday
    assert verdict(p, "a", ts("2026-03-10T14:00:00")) == "brownout"  # the next Tuesday
    nxt = next_window(p, ts("2026-03-03T14:10:00"))
    assert nxt is not None and nxt[1] == (ts("2026-03-10T14:00:00"), ts("2026-03-10T14:15:00"))


def test_a_daily_window_across_midnight() -> None:
    p = policy(recurring("day", "23:50", "20m"))
    assert verdict(p, "a", ts("2026-03-03T23:49:59")) is None
    assert verdict(p, "a", ts("2026-03-03T23:55:00")) == "brownout"
    assert verdict(p, "a", ts("2026-03-04T00:09:59")) == "brownout"
    assert verdict(p, "a", ts("2026-03-04T00:10:00")) is None
    active = active_window(p, ts("2026-03-04T00:05:00"))
    assert active is not None and active[1] == (
        ts("2026-03-03T23:50:00"),
        ts("2026-03-04T00:10:00"),
    )


def test_a_weekly_window_across_the_end_of_the_week() -> None:
    p = policy(recurring("sunday", "23:00", "2h"))  # Sunday 23:00 to Monday 01:00
    assert verdict(p, "a", ts("2026-03-08T23:30:00")) == "brownout"  # Sunday
    assert verdict(p, "a", ts("2026-03-09T00:59:59")) == "brownout"  # Monday
    assert verdict(p, "a", ts("2026-03-09T01:00:00")) is None
    assert verdict(p, "a", ts("2026-03-07T23:30:00")) is None  # Saturday


def test_percent_picks_the_same_clients_in_every_window() -> None:
    p = policy(one_off("2026-03-03T14:00:00", "2026-03-03T15:00:00", percent=10))
    clients = [f"client-{i}" for i in range(2000)]
    at = ts("2026-03-03T14:30:00")
    refused = {c for c in clients if verdict(p, c, at) == "brownout"}
    assert 140 < len(refused) < 260  # about 10% of 2000
    later = {c for c in clients if verdict(p, c, at + 1200) == "brownout"}
    assert later == refused  # sticky: the same clients for the whole window
    wider = policy(one_off("2026-03-03T14:00:00", "2026-03-03T15:00:00", percent=30))
    assert refused < {c for c in clients if verdict(wider, c, at) == "brownout"}


def test_an_exempt_client_is_never_refused() -> None:
    p = policy(one_off("2026-03-03T14:00:00", "2026-03-03T15:00:00"), sunset="2026-01-01T00:00:00")
    exempt = Policy(p.id, p.after_sunset, p.sunset_at, p.windows, frozenset({"billing"}))
    assert verdict(p, "billing", ts("2026-03-03T14:30:00")) == "sunset"
    assert verdict(exempt, "billing", ts("2026-03-03T14:30:00")) is None
    assert verdict(exempt, "web", ts("2026-03-03T14:30:00")) == "sunset"


@given(st.integers(0, 20 * 365 * DAY), st.integers(0, 6), st.integers(0, 1439), st.integers(1, DAY))
def test_a_recurring_window_covers_now_exactly_when_an_occurrence_does(
    now: int, weekday: int, minute: int, length: int
) -> None:
    w = Window(((weekday - 3) % 7) * DAY + minute * 60, length, WEEK, 100)
    occurrence = w.occurrence(now)
    nxt = w.next_occurrence(now)
    assert nxt is not None
    if occurrence is not None:
        assert occurrence[0] <= now < occurrence[1] and nxt == occurrence
        assert dt.datetime.fromtimestamp(occurrence[0], dt.UTC).weekday() == weekday
    else:
        assert now < nxt[0] <= now + WEEK
        assert dt.datetime.fromtimestamp(nxt[0], dt.UTC).weekday() == weekday


def test_bucket_is_stable() -> None:
    assert bucket("old", "client-1") == bucket("old", "client-1")
    assert 0 <= bucket("old", "client-1") < 10_000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15m", 900), ("1h30m", 5400), ("90s", 90), ("2d", 172800), ("x", None), ("", None)],
)
def test_durations(text: str, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("window", "key"),
    [
        (BrownoutConfig(every="tue", at="14:00", for_="15m"), "every"),
        (BrownoutConfig(every="day", at="24:00", for_="15m"), "at"),
        (BrownoutConfig(every="day", at="14:00", for_="25h"), "for"),
        (BrownoutConfig(every="day", at="14:00"), "for"),
        (BrownoutConfig(every="day", at="14:00", for_="1m", percent=0), "percent"),
        (BrownoutConfig(start=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)), "end"),
        (BrownoutConfig(), "start"),
    ],
)
def test_brownout_problems_name_the_key(window: BrownoutConfig, key: str) -> None:
    assert [k for k, _, _ in brownout_problems(window)] == [key]


def test_entries_without_enforcement_compile_to_no_policy() -> None:
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert compile_policy(DeprecationConfig(id="a", param="x", deprecated=day)) is None
    p = compile_policy(
        DeprecationConfig(id="a", param="x", deprecated=day, sunset=day, enforce="after_sunset")
    )
    assert p is not None and p.after_sunset and p.sunset_at == int(day.timestamp())


BASE = """
releases:
  blue: {url: "http://127.0.0.1:1"}
  green: {url: "http://127.0.0.1:2"}
deprecations:
  - id: old-users
    endpoint: GET /v0/users
    deprecated: 2026-01-01
"""


def problems(extra: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + extra, "prod.yaml", {})
    return str(info.value)


def test_enforce_without_a_sunset_names_the_key() -> None:
    assert problems("    enforce: after_sunset\n") == (
        "prod.yaml: deprecations[0].enforce: 'after_sunset' needs a sunset (deprecations[].sunset)"
    )


def test_a_bad_brownout_names_the_key_and_value() -> None:
    text = problems('    brownouts:\n      - {every: tuesday, at: "14:00", for: 15 minutes}\n')
    assert text == (
        "prod.yaml: deprecations[0].brownouts[0].for: '15 minutes' is not a positive duration "
        "(e.g. 15m, 1h, 90s)"
    )
    text = problems("    brownouts:\n      - {start: 2026-03-01T10:00:00Z, end: 2026-03-01}\n")
    assert text.startswith("prod.yaml: deprecations[0].brownouts[0].end: 2026-03-01 is not after")


def test_a_valid_enforcement_loads() -> None:
    cfg = parse_config(
        BASE
        + "    sunset: 2026-06-01\n    enforce: after_sunset\n    exempt: [billing]\n"
        + '    brownouts:\n      - {every: day, at: "23:30", for: 1h, percent: 25}\n'
        + "      - {start: 2026-03-01T10:00:00+01:00, end: 2026-03-01T11:00:00Z}\n",
        "prod.yaml",
        {},
    )
    p = compile_policy(cfg.deprecations[0])
    assert p is not None and p.exempt == {"billing"}
    assert p.windows[0] == Window(23 * 3600 + 1800, 3600, DAY, 25)
    assert p.windows[1] == Window(ts("2026-03-01T09:00:00"), 7200, 0, 100)  # +01:00 as UTC


def test_the_status_entry_at_a_given_time() -> None:
    day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    dep = DeprecationConfig(
        id="old",
        endpoint="GET /v0/users",
        deprecated=day,
        sunset=dt.datetime(2026, 6, 1, tzinfo=dt.UTC),
        enforce="after_sunset",
        brownouts=[BrownoutConfig(every="tuesday", at="14:00", for_="15m", percent=10)],
    )
    during = enforcement_json([dep], ts("2026-03-03T14:05:00"))[0]  # a Tuesday, in the window
    assert during["enforced"] is False
    assert during["brownout_now"] == {
        "start": "2026-03-03T14:00:00Z",
        "end": "2026-03-03T14:15:00Z",
        "percent": 10,
    }
    assert during["next_brownout"]["start"] == "2026-03-10T14:00:00Z"
    lines = enforcement_lines([during])
    assert "brownout now, until 2026-03-03T14:15:00Z (10%)" in lines[2]
    after = enforcement_json([dep], ts("2026-06-02T00:00:00"))[0]
    assert after["enforced"] is True and after["brownout_now"] is None
    assert "switched off since the sunset 2026-06-01T00:00:00Z" in enforcement_lines([after])[2]
    assert enforcement_json([DeprecationConfig(id="x", param="p", deprecated=day)], 0.0) == []
