"""Deprecation telemetry through the running proxy: what is counted, per client, in /metrics.

One real release (``helpers_telemetry.TelemetryApp``) serves every response shape; Switchback
runs in front of it with the deprecations below, and each test reads the live /metrics.
"""

from __future__ import annotations

import gzip
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from tests.integration.conftest import Proxy, StartProxy, raw_exchange
from tests.integration.helpers_telemetry import (
    TelemetryApp,
    counts,
    fetch,
    last_seen,
    running_app,
    skips,
)

DEPRECATIONS: list[dict[str, Any]] = [
    {"id": "user-role", "field": "user.role", "on": "GET /users/{id}", "deprecated": "2026-06-01"},
    {"id": "item-role", "field": "items[].role", "deprecated": "2026-06-01"},
    {"id": "grid-x", "field": "data[][].x", "on": "GET /grid", "deprecated": "2026-06-01"},
    {
        "id": "meta-flag",
        "field": "meta.*.deprecated",
        "on": "GET /meta",
        "deprecated": "2026-06-01",
    },
    {"id": "users-v0", "endpoint": "GET /v0/users/{id}", "deprecated": "2026-03-01"},
    {"id": "sort-by", "param": "sort_by", "on": "GET /users", "deprecated": "2026-05-01"},
    {"id": "role-filter", "param": "filter[role]", "deprecated": "2026-05-01"},
    {
        "id": "legacy-flag",
        "request_field": "options.legacy",
        "on": "POST /orders",
        "deprecated": "2026-04-01",
    },
    {
        "id": "tag-kind",
        "request_field": "tags[].kind",
        "on": "POST /orders",
        "deprecated": "2026-04-01",
    },
]


@pytest.fixture
async def app() -> AsyncIterator[TelemetryApp]:
    async with running_app() as app:
        yield app


def config(app: TelemetryApp, **extra: Any) -> dict[str, Any]:
    return {"releases": {"blue": {"url": app.url}}, "deprecations": DEPRECATIONS, **extra}


async def touched_by(proxy: Proxy, client: str) -> dict[tuple[str, str], float]:
    """Everything /metrics counts for ``client``: {(element, kind): count}."""
    return {(e, k): v for (e, k, c), v in counts(await proxy.metrics()).items() if c == client}


# -- response fields --


async def test_a_response_field_is_counted_per_client_with_its_last_seen_time(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    before = time.time()
    for client, path in [
        ("alpha", "/users/1"),
        ("alpha", "/users/2"),
        ("beta", "/users/3"),
        ("gamma", "/users/nobody"),  # this user has no "role"
        ("delta", "/healthz"),  # a route no field rule names
    ]:
        reply = await fetch(proxy.url, path, client=client)
        assert reply.status == 200
    after = time.time()

    samples = await proxy.metrics()
    assert counts(samples) == {
        ("user-role", "exposure", "alpha"): 2.0,
        ("user-role", "exposure", "beta"): 1.0,
    }
    seen = last_seen(samples)
    assert set(seen) == {("user-role", "alpha"), ("user-role", "beta")}
    assert all(before <= ts <= after for ts in seen.values())


async def test_array_and_wildcard_paths_match_only_their_shape(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    expected = {
        "/items": {("item-role", "exposure"): 1.0},  # counted once, whatever the elements
        "/items?v=plain": {},  # "role" at the top, not in an item
        "/items?v=mixed": {("item-role", "exposure"): 1.0},  # among numbers, null and a string
        "/grid": {("grid-x", "exposure"): 1.0},
        "/grid?v=flat": {},  # data[].x is one array level short of data[][].x
        "/meta": {("meta-flag", "exposure"): 1.0},
        "/meta?v=flat": {},  # meta.deprecated has no key between meta and deprecated
        "/meta?v=mixed": {("meta-flag", "exposure"): 1.0},
    }
    for path in expected:
        assert (await fetch(proxy.url, path, client=path)).status == 200
    assert {path: await touched_by(proxy, path) for path in expected} == expected


async def test_a_field_rule_restricted_to_a_route_ignores_other_routes(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    """/v0/users/1 sends the same user.role, but user-role is deprecated on /users/{id} only."""
    proxy = await switchback(config(app))
    await fetch(proxy.url, "/v0/users/1", client="old-app")
    assert ("user-role", "exposure") not in await touched_by(proxy, "old-app")


# -- request side: endpoints, query parameters, request-body fields --


ENDPOINT_CASES = [
    ("GET", "/v0/users/1", True),
    ("GET", "/v0/users/abc?x=1", True),
    ("GET", "/v0/%75sers/1", True),  # a segment compares percent-decoded
    ("POST", "/v0/users/1", False),  # the rule names GET
    ("GET", "/v0/users/1/orders", False),
    ("GET", "/v0/users/", False),  # {id} needs a non-empty segment
    ("GET", "/v0//users/1", False),
    ("GET", "/v1/users/1", False),
]


async def test_an_endpoint_is_counted_as_a_use_for_its_method_and_path_only(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    for method, target, _ in ENDPOINT_CASES:
        request = f"{method} {target} HTTP/1.1\r\nHost: h\r\nX-Client-Id: {method} {target}\r\n"
        request += "Content-Length: 0\r\n\r\n" if method == "POST" else "\r\n"
        status, _, _ = await raw_exchange(proxy.port, request.encode())
        assert status == 200
        assert app.received[-1][:2] == (method, target)  # the app got the target as sent
    touched = {f"{m} {t}": await touched_by(proxy, f"{m} {t}") for m, t, _ in ENDPOINT_CASES}
    assert touched == {
        f"{m} {t}": {("users-v0", "use"): 1.0} if used else {} for m, t, used in ENDPOINT_CASES
    }


PARAM_CASES = {
    "/users?sort_by=name": {"sort-by"},
    "/users?page=2&sort_by": {"sort-by"},
    "/users?sort%5Fby=name": {"sort-by"},  # names compare percent-decoded
    "/users?q=sort_by": set(),  # a value, not a name
    "/users?sort_byx=1&xsort_by=2": set(),
    "/orders?sort_by=name": set(),  # sort-by is deprecated on GET /users only
    "/users?filter[role]=admin": {"role-filter"},
    "/users?filter%5Brole%5D=admin": {"role-filter"},
    "/users?filter%5brole%5d=admin": {"role-filter"},  # lower-case hex digits
    "/items/x?filter%5Brole%5D=admin&sort_by=id": {"role-filter"},  # on any route
    "/users?filter=role": set(),
    "/users": set(),
}


async def test_a_query_parameter_is_counted_under_any_spelling_of_its_name(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    for target in PARAM_CASES:
        request = f"GET {target} HTTP/1.1\r\nHost: h\r\nX-Client-Id: {target}\r\n\r\n"
        status, _, _ = await raw_exchange(proxy.port, request.encode())
        assert status == 200
        assert app.received[-1][1] == target  # byte for byte
    touched = {target: await touched_by(proxy, target) for target in PARAM_CASES}
    assert touched == {
        target: {(element, "use"): 1.0 for element in elements}
        for target, elements in PARAM_CASES.items()
    }


LEGACY = {"options": {"legacy": True}}
BODY_CASES: list[tuple[str, str, str | None, object, set[str]]] = [
    # path, Content-Type, Content-Encoding, JSON body, the elements it uses
    ("/orders", "application/json", None, LEGACY, {"legacy-flag"}),
    ("/orders", "application/json", None, {"options": {"legacy": None}}, {"legacy-flag"}),
    ("/orders", "application/json", None, {"options": {"fast": True}}, set()),
    ("/orders", "application/json", None, {"tags": [{"name": "a"}, {"kind": 1}]}, {"tag-kind"}),
    ("/orders", "application/json", None, {"tags": {"kind": 1}}, set()),  # not an array
    ("/orders", "application/json; charset=utf-8", "gzip", LEGACY, {"legacy-flag"}),
    ("/orders", "application/merge-patch+json", None, LEGACY, {"legacy-flag"}),
    ("/orders", "text/plain", None, LEGACY, set()),
    ("/carts", "application/json", None, LEGACY, set()),  # not the rule's route
]


async def test_a_request_body_field_is_counted_in_json_posts_to_its_route(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    for n, (path, content_type, encoding, body, _) in enumerate(BODY_CASES):
        data = orjson.dumps(body)
        wire = gzip.compress(data) if encoding == "gzip" else data
        headers = {"Content-Type": content_type}
        if encoding:
            headers["Content-Encoding"] = encoding
        reply = await fetch(
            proxy.url, path, client=f"writer-{n}", method="POST", headers=headers, body=wire
        )
        assert reply.status == 200
        # The app got the body (aiohttp's server undoes a Content-Encoding before the handler).
        assert app.received[-1] == ("POST", path, data)
        assert reply.body == app.sent[-1]
    touched = [await touched_by(proxy, f"writer-{n}") for n in range(len(BODY_CASES))]
    assert touched == [{(element, "use"): 1.0 for element in case[-1]} for case in BODY_CASES]


# -- what the client receives, and what is inspected --


async def test_the_body_arrives_byte_for_byte_while_the_field_inside_is_detected(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    shapes = ["json", "gzip", "deflate", "raw-deflate", "br", "chunked", "vnd", "problem"]
    for shape in shapes:
        reply = await fetch(proxy.url, "/users/1", client=shape, shape=shape)
        assert reply.status == 200
        assert reply.body == app.sent[-1], shape
        if shape in ("gzip", "deflate", "raw-deflate", "br"):
            assert reply.values("Content-Encoding") == [shape.removeprefix("raw-")]
    samples = await proxy.metrics()
    assert counts(samples) == {("user-role", "exposure", shape): 1.0 for shape in shapes}
    assert skips(samples) == {}


@pytest.mark.parametrize(
    ("path", "shape", "reason"),
    [
        ("/users/1", "text", "not_json"),
        ("/users/1", "malformed", "malformed"),
        ("/users/1", "zstd", "encoding"),
        ("/users/1", "bomb", "too_large"),  # a few hundred bytes that inflate past the cap
        ("/big", "json", "too_large"),  # announced by Content-Length
        ("/big", "chunked", "too_large"),  # found out while the chunks arrive
    ],
)
async def test_a_body_not_inspected_passes_through_and_is_counted_by_reason(
    switchback: StartProxy, app: TelemetryApp, path: str, shape: str, reason: str
) -> None:
    deprecations = [
        {"id": "user-role", "field": "user.role", "deprecated": "2026-06-01"},
    ]
    proxy = await switchback(
        {
            "releases": {"blue": {"url": app.url}},
            "deprecations": deprecations,
            "telemetry": {"max_body_bytes": 1024},
        }
    )
    headers = {"X-Size": "5000"}
    reply = await fetch(proxy.url, path, client="reader", shape=shape, headers=headers)
    assert reply.status == 200
    assert reply.body == app.sent[-1]
    if path == "/big":
        assert len(reply.body) == 5000
    assert reply.values("Deprecation") == []
    samples = await proxy.metrics()
    assert skips(samples) == {reason: 1.0}
    assert counts(samples) == {}

    # The same proxy still inspects a body that fits.
    await fetch(proxy.url, "/users/1", client="reader")
    samples = await proxy.metrics()
    assert counts(samples) == {("user-role", "exposure", "reader"): 1.0}
    assert skips(samples) == {reason: 1.0}


async def test_a_response_without_a_body_is_not_counted_as_skipped(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    """A redirect or an empty 200 has no Content-Type because it has no body to inspect."""
    proxy = await switchback(config(app))
    for shape in ("redirect", "empty"):
        reply = await fetch(proxy.url, "/users/1", client="reader", shape=shape)
        assert reply.status in (200, 302)
        assert reply.body == b""
    samples = await proxy.metrics()
    assert skips(samples) == {}
    assert counts(samples) == {}


LEGACY_BYTES = orjson.dumps({"options": {"legacy": True}})
REQUEST_SKIPS = [
    # Content-Type, extra headers, body, reason
    ("application/x-www-form-urlencoded", {}, b"options.legacy=1", "not_json"),
    ("text/plain", {}, LEGACY_BYTES, "not_json"),
    ("application/json", {}, LEGACY_BYTES[:-2], "malformed"),
    (
        "application/json",
        {"Content-Encoding": "compress"},
        b"\x1f\x9d\x90" + LEGACY_BYTES,
        "encoding",
    ),
    ("application/json", {}, LEGACY_BYTES[:-1] + b', "pad": "' + b"x" * 200 + b'"}', "too_large"),
]


@pytest.mark.parametrize(("content_type", "extra", "body", "reason"), REQUEST_SKIPS)
async def test_a_request_body_not_inspected_is_forwarded_and_counted_by_reason(
    switchback: StartProxy,
    app: TelemetryApp,
    content_type: str,
    extra: dict[str, str],
    body: bytes,
    reason: str,
) -> None:
    only_body_rules = [d for d in DEPRECATIONS if "request_field" in d]
    proxy = await switchback(
        {
            "releases": {"blue": {"url": app.url}},
            "deprecations": only_body_rules,
            "telemetry": {"max_body_bytes": 100},
        }
    )
    headers = {"Content-Type": content_type, **extra}
    reply = await fetch(
        proxy.url, "/orders", client="writer", method="POST", headers=headers, body=body
    )
    assert reply.status == 200
    if "Content-Encoding" not in extra:  # aiohttp's server would try to undo it
        assert app.received[-1] == ("POST", "/orders", body)
    samples = await proxy.metrics()
    assert skips(samples) == {reason: 1.0}
    assert counts(samples) == {}


async def test_requests_without_a_body_or_off_the_route_are_not_counted_as_skipped(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    only_body_rules = [d for d in DEPRECATIONS if "request_field" in d]
    proxy = await switchback(
        {"releases": {"blue": {"url": app.url}}, "deprecations": only_body_rules}
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    await fetch(proxy.url, "/orders", method="GET")
    await fetch(proxy.url, "/orders", method="POST", headers=form, body=b"")
    await fetch(proxy.url, "/carts", method="POST", headers=form, body=b"options.legacy=1")
    assert skips(await proxy.metrics()) == {}


async def test_a_request_to_an_unrelated_route_pays_nothing(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    routed = [d for d in DEPRECATIONS if "on" in d or "endpoint" in d]
    proxy = await switchback({"releases": {"blue": {"url": app.url}}, "deprecations": routed})
    for shape in ("json", "text", "malformed", "zstd"):
        reply = await fetch(proxy.url, "/items", client="bystander", shape=shape)
        assert reply.status == 200
        assert reply.body == app.sent[-1]
        names = {k.lower() for k, _ in reply.headers}
        assert names.isdisjoint({"deprecation", "sunset", "link", "warning"})
    samples = await proxy.metrics()
    assert counts(samples) == {}
    assert last_seen(samples) == {}
    assert skips(samples) == {}
    _, report = await proxy.admin_call("GET", "/deprecations")
    assert all(e["clients"] == [] for e in report["elements"])


# -- who the client is --


async def test_client_labels_are_bounded_while_the_ledger_keeps_every_client(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app, clients={"known": ["a"], "max_tracked": 3}))
    others = [f"c{i}" for i in range(9)]
    for client in [*others, "a"]:  # "a" last: a known client keeps its label all the same
        await fetch(proxy.url, "/users/1", client=client)

    samples = await proxy.metrics()
    assert counts(samples) == {
        ("user-role", "exposure", "a"): 1.0,
        ("user-role", "exposure", "c0"): 1.0,
        ("user-role", "exposure", "c1"): 1.0,
        ("user-role", "exposure", "c2"): 1.0,
        ("user-role", "exposure", "other"): 6.0,
    }
    assert {client for _, client in last_seen(samples)} == {"a", "c0", "c1", "c2", "other"}

    _, report = await proxy.admin_call("GET", "/deprecations")
    (role,) = [e for e in report["elements"] if e["id"] == "user-role"]
    assert sorted(c["client"] for c in role["clients"]) == sorted([*others, "a"])
    assert all(c["count"] == 1 for c in role["clients"])


async def test_an_api_key_identifies_the_client_without_ever_appearing(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(
        config(app, clients={"id_header": None, "api_key_header": "X-Api-Key"})
    )
    keys = ["sk_live_4f9a1c2e7b", "sk_live_0d3e8a5f61"]
    for key in [keys[0], keys[0], keys[1]]:
        reply = await fetch(proxy.url, "/users/1", headers={"X-Api-Key": key})
        assert reply.status == 200

    samples = await proxy.metrics()
    labels = {client: n for (_, _, client), n in counts(samples).items()}
    assert sorted(labels.values()) == [1.0, 2.0]  # one label per key, the same for a repeat
    for label in labels:
        assert re.fullmatch(r"key:[0-9a-f]{16}", label)
    _, report = await proxy.admin_call("GET", "/deprecations")
    (role,) = [e for e in report["elements"] if e["id"] == "user-role"]
    assert sorted(c["client"] for c in role["clients"]) == sorted(labels)

    metrics_text = await _text(proxy.admin + "/metrics")
    report_text = await _text(proxy.admin + "/deprecations")
    for key in keys:
        assert key not in metrics_text
        assert key not in report_text


async def _text(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return await resp.text()


async def test_a_client_made_known_by_a_reload_gets_its_own_label(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app, clients={"known": ["a"], "max_tracked": 1}))
    await fetch(proxy.url, "/users/1", client="first")  # takes the one tracked label
    await fetch(proxy.url, "/users/1", client="partner")  # beyond the bound: "other"

    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["clients"]["known"] = ["a", "partner"]
    proxy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    status, _ = await proxy.admin_call("POST", "/reload")
    assert status == 200
    for client in ("partner", "first", "newcomer"):
        await fetch(proxy.url, "/users/1", client=client)

    assert counts(await proxy.metrics()) == {
        ("user-role", "exposure", "first"): 2.0,  # keeps the label it had
        ("user-role", "exposure", "partner"): 1.0,  # known now
        ("user-role", "exposure", "other"): 2.0,  # partner before the reload, newcomer after
    }


async def test_clients_keep_their_labels_across_a_reload_that_changes_the_bound(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    """A reload that changes ``clients.known`` or ``max_tracked`` keeps every tracked
    client's own label: a newcomer arriving first after the reload does not take it."""
    proxy = await switchback(config(app, clients={"known": [], "max_tracked": 2}))
    for client in ("first", "second", "late"):
        await fetch(proxy.url, "/users/1", client=client)

    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["clients"] = {**cfg["clients"], "known": ["partner"], "max_tracked": 2}
    proxy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    status, _ = await proxy.admin_call("POST", "/reload")
    assert status == 200
    for client in ("newcomer", "second", "first", "partner"):
        await fetch(proxy.url, "/users/1", client=client)

    assert counts(await proxy.metrics()) == {
        ("user-role", "exposure", "first"): 2.0,
        ("user-role", "exposure", "second"): 2.0,
        ("user-role", "exposure", "partner"): 1.0,
        ("user-role", "exposure", "other"): 2.0,  # late before the reload, newcomer after
    }
