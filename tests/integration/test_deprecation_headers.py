"""The headers that tell a client it touched a deprecated element, as they arrive on the wire.

RFC 9745 ``Deprecation: @<unix seconds>``, RFC 8594 ``Sunset: <IMF-fixdate>``, RFC 8288
``Link: <url>; rel="deprecation"`` / ``rel="sunset"`` and the optional ``Warning: 299``. The
expected values are computed from the dates written in the config below with ``calendar`` and
``email.utils``, independently of Switchback's own conversion.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
import pytest

from tests.integration.conftest import Proxy, StartProxy
from tests.integration.helpers_telemetry import (
    OWN_DEPRECATION,
    OWN_LINK_URL,
    Reply,
    TelemetryApp,
    counts,
    fetch,
    running_app,
)

ROLE_LINK = "https://api.example.com/changes#user-role"
V0_LINK = "https://api.example.com/changes#users-v0"
V0_SUNSET_LINK = "https://api.example.com/migrations/v1-users"
SORT_LINK = "https://api.example.com/changes#sort-by"

DEPRECATIONS: list[dict[str, Any]] = [
    {
        "id": "user-role",
        "field": "user.role",
        "deprecated": "2026-06-01",
        "sunset": "2026-09-01T06:07:08+02:00",  # 04:07:08 UTC
        "link": ROLE_LINK,
        "replacement": "user.roles",
    },
    {
        "id": "users-v0",
        "endpoint": "GET /v0/users/{id}",
        "deprecated": "2026-03-01",
        "sunset": "2026-12-31",
        "link": V0_LINK,
        "sunset_link": V0_SUNSET_LINK,
        "replacement": "GET /users/{id}",
    },
    {
        "id": "sort-by",
        "param": "sort_by",
        "deprecated": "2026-02-15T12:30:45Z",
        "link": SORT_LINK,
        "replacement": "order",
    },
    {"id": "legacy-flag", "request_field": "options.legacy", "deprecated": "2026-04-01"},
]

ROLE_SUNSET = dt.datetime(2026, 9, 1, 4, 7, 8, tzinfo=dt.UTC)

DEPRECATION_SYNTAX = re.compile(r"^@\d+$")
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d{2}:\d{2}:\d{2} GMT$"
)
LINK_VALUE = re.compile(r'^<([^<>\s]+)>; rel="(deprecation|sunset)"$')
WARNING = re.compile(r'^299 - "deprecated: (.*)"$')
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # date.weekday() order
HEADERS = ("deprecation", "sunset", "link", "warning")


def unix(year: int, month: int, day: int, h: int = 0, m: int = 0, s: int = 0) -> int:
    return calendar.timegm((year, month, day, h, m, s, 0, 0, 0))


@pytest.fixture
async def app() -> AsyncIterator[TelemetryApp]:
    async with running_app() as app:
        yield app


async def start(switchback: StartProxy, app: TelemetryApp, **telemetry: Any) -> Proxy:
    return await switchback(
        {
            "releases": {"blue": {"url": app.url}},
            "deprecations": DEPRECATIONS,
            "telemetry": telemetry,
        }
    )


def deprecation(reply: Reply) -> int:
    (value,) = reply.values("Deprecation")  # exactly one
    assert DEPRECATION_SYNTAX.match(value), value
    return int(value[1:])


def sunset(reply: Reply) -> dt.datetime:
    (value,) = reply.values("Sunset")  # exactly one
    assert IMF_FIXDATE.match(value), value
    when = parsedate_to_datetime(value)
    assert value.startswith(DAY_NAMES[when.weekday()] + ",")  # the day name fits the date
    return when


def links(reply: Reply, skip: int = 0) -> list[tuple[str, str]]:
    """Every (url, rel) of the Link headers after the first ``skip``, in order; each
    link-value must be well formed."""
    out = []
    for header in reply.values("Link")[skip:]:
        for value in header.split(", "):
            m = LINK_VALUE.match(value)
            assert m, value
            out.append((m.group(1), m.group(2)))
    return out


def warned(reply: Reply) -> list[str]:
    (value,) = reply.values("Warning")
    m = WARNING.match(value)
    assert m, value
    return m.group(1).split(", ")


async def test_a_response_field_gets_the_standard_headers(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await start(switchback, app)
    reply = await fetch(proxy.url, "/users/1", client="reader")
    assert reply.status == 200
    assert deprecation(reply) == unix(2026, 6, 1)
    assert sunset(reply) == ROLE_SUNSET
    assert links(reply) == [(ROLE_LINK, "deprecation")]
    assert reply.values("Warning") == []  # off unless configured
    assert reply.body == app.sent[-1]


async def test_several_elements_give_the_earliest_dates_and_every_link_once(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    """/v0/users/1?sort_by=name uses the endpoint and the parameter, and its body has user.role:
    the earliest deprecation is sort_by's (with a time of day), the earliest sunset user.role's."""
    proxy = await start(switchback, app, warning_header=True)
    reply = await fetch(proxy.url, "/v0/users/1?sort_by=name", client="old-app")
    assert reply.status == 200
    assert deprecation(reply) == unix(2026, 2, 15, 12, 30, 45)
    assert sunset(reply) == ROLE_SUNSET
    found = links(reply)
    assert sorted(found) == sorted(
        [
            (ROLE_LINK, "deprecation"),
            (V0_LINK, "deprecation"),
            (V0_SUNSET_LINK, "sunset"),
            (SORT_LINK, "deprecation"),
        ]
    )
    assert sorted(warned(reply)) == sorted(
        [
            "user.role (use user.roles)",
            "GET /v0/users/{id} (use GET /users/{id})",
            "sort_by (use order)",
        ]
    )
    assert counts(await proxy.metrics()) == {
        ("users-v0", "use", "old-app"): 1.0,
        ("sort-by", "use", "old-app"): 1.0,
        ("user-role", "exposure", "old-app"): 1.0,
    }


async def test_the_warning_header_follows_the_config(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    body = orjson.dumps({"options": {"legacy": True}})
    json = {"Content-Type": "application/json"}
    on = await start(switchback, app, warning_header=True)
    off = await start(switchback, app, warning_header=False)
    with_warning = await fetch(on.url, "/orders", method="POST", headers=json, body=body)
    without = await fetch(off.url, "/orders", method="POST", headers=json, body=body)

    assert warned(with_warning) == ["options.legacy"]
    assert without.values("Warning") == []
    for reply in (with_warning, without):
        assert deprecation(reply) == unix(2026, 4, 1)
        assert reply.values("Sunset") == []  # legacy-flag has no sunset and no link
        assert reply.values("Link") == []
        assert reply.body == body


@pytest.mark.parametrize(
    ("own_link", "added"),
    [
        (f'<{OWN_LINK_URL}>; rel="deprecation"', []),
        (f"<{OWN_LINK_URL}>; REL=Deprecation", []),  # the same relation, spelled otherwise
        (f'<{OWN_LINK_URL}>; rel="sunset deprecation"', []),  # one of several relations
        (f'<{OWN_LINK_URL}>; rel="help"', [(OWN_LINK_URL, "deprecation")]),  # another relation
    ],
)
async def test_the_apps_own_deprecation_and_link_are_kept_and_never_repeated(
    switchback: StartProxy, app: TelemetryApp, own_link: str, added: list[tuple[str, str]]
) -> None:
    app.own_link = own_link
    deprecations = [{**DEPRECATIONS[0], "link": OWN_LINK_URL}]
    proxy = await switchback({"releases": {"blue": {"url": app.url}}, "deprecations": deprecations})
    reply = await fetch(proxy.url, "/users/1", client="reader", shape="own")
    assert reply.values("Deprecation") == [OWN_DEPRECATION]  # the app's, once
    assert reply.values("Link")[0] == own_link  # the app's, first and untouched
    assert links(reply, skip=1) == added
    assert sunset(reply) == ROLE_SUNSET  # the app sent none: Switchback's is added
    assert reply.body == app.sent[-1]
    assert counts(await proxy.metrics()) == {("user-role", "exposure", "reader"): 1.0}


async def test_a_response_that_involves_no_deprecated_element_gets_no_header(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await start(switchback, app, warning_header=True)
    json = {"Content-Type": "application/json"}
    replies = {
        "user without role": await fetch(proxy.url, "/users/nobody"),
        "gzip user without role": await fetch(proxy.url, "/users/nobody", shape="gzip"),
        "unrelated route": await fetch(proxy.url, "/healthz"),
        "not inspected": await fetch(proxy.url, "/users/1", shape="text"),
        "parameter value only": await fetch(proxy.url, "/users?q=sort_by"),
        "other method": await fetch(
            proxy.url, "/v0/users/1", method="POST", headers={"Content-Type": "text/plain"}
        ),
        "body without the field": await fetch(
            proxy.url, "/orders", method="POST", headers=json, body=b'{"options": {}}'
        ),
    }
    for case, reply in replies.items():
        assert reply.status == 200, case
        present = {name.lower() for name, _ in reply.headers} & set(HEADERS)
        assert present == set(), case
    assert counts(await proxy.metrics()) == {}
