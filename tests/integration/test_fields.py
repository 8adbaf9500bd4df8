"""Field selection in front of a real release: pruning, encodings, refusals, pass-through,
declare mode, declared reads on /metrics and in the report, and reloads of ``fields:``."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import yaml

from proxy import cli
from tests.integration.conftest import Proxy, StartProxy, header_values, raw_exchange, sample
from tests.integration.helpers_telemetry import (
    ITEMS,
    USER,
    TelemetryApp,
    counts,
    fetch,
    running_app,
)

ROLE = {
    "id": "user-role",
    "field": "user.role",
    "on": "GET /users/{id}",
    "deprecated": "2026-06-01",
}
ITEM_ROLE = {"id": "item-role", "field": "items[].role", "deprecated": "2026-06-01"}
PRUNED = "X-Fields-Pruned"


@pytest.fixture
async def app() -> AsyncIterator[TelemetryApp]:
    async with running_app() as app:
        yield app


def config(app: TelemetryApp, **fields: Any) -> dict[str, Any]:
    return {
        "releases": {"blue": {"url": app.url}},
        "deprecations": [ROLE, ITEM_ROLE],
        "fields": {"mode": "prune", **fields},
    }


def selecting(fields: str, **more: str) -> dict[str, str]:
    return {"X-Fields": fields, "Accept-Encoding": "identity", **more}


async def outcomes(proxy: Proxy) -> dict[str, float]:
    samples = await proxy.metrics()
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in samples.items()
        if name == "switchback_fields_responses_total" and value
    }


async def test_nested_objects_and_arrays_of_objects_are_pruned(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    r = await fetch(proxy.url, "/users/1", headers=selecting("user(id,name,missing),absent"))
    assert r.status == 200
    assert orjson.loads(r.body) == {"user": {"id": "1", "name": "Ada"}}
    assert r.values("Content-Length") == [str(len(r.body))]
    assert (r.values(PRUNED), r.values("Vary")) == (["yes"], ["X-Fields"])

    r = await fetch(proxy.url, "/items", headers=selecting("items/id"))
    assert orjson.loads(r.body) == {"items": [{"id": 0}, {"id": 1}, {"id": 2}]}
    r = await fetch(proxy.url, "/items", headers=selecting("items(id,role)"))
    assert orjson.loads(r.body) == ITEMS

    r = await fetch(proxy.url, "/users/1", headers={"Accept-Encoding": "identity"})
    assert r.body == app.sent[-1]  # no list: untouched, and nothing said
    assert (r.values(PRUNED), r.values("Vary")) == ([], [])
    assert await outcomes(proxy) == {"pruned": 3}


async def test_gzip_from_the_app_is_pruned_and_sent_in_an_encoding_the_client_accepts(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app))
    accepts_gzip = selecting("user/id", **{"Accept-Encoding": "br;q=0.5, gzip"})
    r = await fetch(proxy.url, "/users/1", shape="gzip", headers=accepts_gzip)
    assert r.values("Content-Encoding") == ["gzip"]
    assert r.values("Content-Length") == [str(len(r.body))]
    assert orjson.loads(gzip.decompress(r.body)) == {"user": {"id": "1"}}

    for accept in ("identity", "gzip;q=0, deflate"):
        headers = selecting("user/id", **{"Accept-Encoding": accept})
        r = await fetch(proxy.url, "/users/1", shape="gzip", headers=headers)
        assert r.values("Content-Encoding") == []
        assert orjson.loads(r.body) == {"user": {"id": "1"}}
        assert r.values("Content-Length") == [str(len(r.body))]


async def test_a_pruned_body_drops_the_apps_strong_etag_and_the_etag_cache_stays_true(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    """The pruned bytes are not the ones the ETag named. What the ETag cache knows of the whole
    body (user.role in it) is not what a pruned body exposes, and what a pruned body holds
    (no user.role) must never be remembered under that ETag for clients without a list."""
    proxy = await switchback(config(app))
    for client in ("lean", "full", "lean", "full"):
        headers = selecting("user/id") if client == "lean" else {"Accept-Encoding": "identity"}
        r = await fetch(proxy.url, "/users/1", client=client, shape="etag", headers=headers)
        if client == "lean":
            assert orjson.loads(r.body) == {"user": {"id": "1"}}
            assert r.values("ETag") == []
            assert r.values("Deprecation") == []  # user.role never reached this client
        else:
            assert r.values("ETag") == ['"v1"'] and r.body == app.sent[-1]
            assert r.values("Deprecation") != []
    found = counts(await proxy.metrics())
    assert found.get(("user-role", "exposure", "full")) == 2
    assert ("user-role", "exposure", "lean") not in found


@pytest.mark.parametrize(
    ("headers", "target", "position", "expected"),
    [
        ({"X-Fields": "user(id,name"}, "/users/1", 12, "',' or ')'"),
        ({"X-Fields": "user,,id"}, "/users/1", 5, "a field name"),
        ({}, "/users/1?fields=user%28id%29%29", 8, "',' or the end (unmatched ')')"),
    ],
)
async def test_a_malformed_list_is_a_400_that_says_where_and_the_app_is_not_called(
    switchback: StartProxy,
    app: TelemetryApp,
    headers: dict[str, str],
    target: str,
    position: int,
    expected: str,
) -> None:
    proxy = await switchback(config(app, query_param="fields"))
    r = await fetch(proxy.url, target, headers=headers)
    assert r.status == 400
    assert r.values("Content-Type") == ["application/json"]
    body = orjson.loads(r.body)
    assert (body["error"], body["position"], body["expected"]) == (
        "invalid_fields",
        position,
        expected,
    )
    assert f"at position {position}" in body["detail"]
    assert app.received == []
    assert await outcomes(proxy) == {"invalid": 1}


async def test_the_query_parameter_selects_too_and_still_reaches_the_app(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app, query_param="fields"))
    target = "/users/1?fields=user%28id%29&x=1"
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, headers, body = await raw_exchange(proxy.port, request.encode())
    assert orjson.loads(body) == {"user": {"id": "1"}}
    assert header_values(headers, PRUNED) == ["yes"]
    assert header_values(headers, "Vary") == []  # the URL itself is the cache's key
    assert app.received[-1][1] == target  # byte for byte


@pytest.mark.parametrize(
    ("fields", "target", "shape", "size", "reason"),
    [
        ({}, "/users/1", "text", "0", "not-json"),
        ({"max_body_bytes": 1000}, "/big", None, "5000", "too-large"),  # by Content-Length
        ({}, "/big", "chunked", "5000", "too-large"),  # held until over the telemetry cap
        ({}, "/users/1", "missing", "0", "status"),
        ({}, "/users/1", "malformed", "0", "malformed"),
        ({}, "/users/1", "zstd", "0", "encoding"),
    ],
)
async def test_what_cannot_be_pruned_passes_through_byte_for_byte_and_says_why(
    switchback: StartProxy,
    app: TelemetryApp,
    fields: dict[str, Any],
    target: str,
    shape: str | None,
    size: str,
    reason: str,
) -> None:
    cfg = config(app, **fields) | {"telemetry": {"max_body_bytes": 2048}}
    proxy = await switchback(cfg)
    r = await fetch(
        proxy.url, target, shape=shape, headers=selecting("user/id", **{"X-Size": size})
    )
    assert r.body == app.sent[-1]
    assert r.values(PRUNED) == [f"no; reason={reason}"]
    assert await outcomes(proxy) == {reason: 1}


async def test_declare_mode_leaves_the_body_byte_for_byte(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app, mode="declare"))
    for shape in (None, "gzip"):
        r = await fetch(proxy.url, "/users/1", shape=shape, headers=selecting("user(id)"))
        assert r.body == app.sent[-1]
        assert r.values(PRUNED) == ["no; reason=declare"] and r.values("Vary") == []
    assert await outcomes(proxy) == {"declare": 2}


async def report(proxy: Proxy) -> dict[str, dict[str, Any]]:
    status, body = await proxy.admin_call("GET", "/deprecations")
    assert status == 200
    return {e["id"]: e for e in body["elements"]}


def clients(element: dict[str, Any]) -> dict[str, tuple[str, int, int, bool]]:
    return {
        c["client"]: (c["declares"], c["reads"], c["exposures"], c["depends"])
        for c in element["clients"]
    }


async def gate(proxy: Proxy, element: str) -> int:
    args = ["report", "--admin", proxy.admin, "--fail-if-used", element]
    return await asyncio.to_thread(cli.main, args)


async def test_prune_mode_counts_reads_of_declared_fields_and_nothing_pruned_away(
    switchback: StartProxy, app: TelemetryApp, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = await switchback(config(app))
    await fetch(proxy.url, "/users/1", client="reader", headers=selecting("user(id,role)"))
    await fetch(proxy.url, "/users/1", client="lean", headers=selecting("user(id)"))
    await fetch(proxy.url, "/users/1", client="old", headers={"Accept-Encoding": "identity"})
    r = await fetch(proxy.url, "/items", client="reader", headers=selecting("items/role"))
    assert orjson.loads(r.body) == {"items": [{"role": "viewer"}, {}, {"role": "editor"}]}
    await fetch(proxy.url, "/items", client="lean", headers=selecting("items/id"))

    assert counts(await proxy.metrics()) == {
        ("user-role", "exposure", "reader"): 1,
        ("user-role", "read", "reader"): 1,
        ("user-role", "exposure", "old"): 1,
        ("item-role", "exposure", "reader"): 1,
        ("item-role", "read", "reader"): 1,
    }
    elements = await report(proxy)
    assert clients(elements["user-role"]) == {
        "reader": ("yes", 1, 1, True),
        "old": ("no", 0, 1, True),
    }
    assert clients(elements["item-role"]) == {"reader": ("yes", 1, 1, True)}
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["report", "--admin", proxy.admin]) == 0
    table = capsys.readouterr().out
    assert "READ/EXPOSED" in table
    assert next(line for line in table.splitlines() if "reader" in line).split()[-3:] == [
        "yes",
        "1/1",
        "yes",
    ]


async def test_declare_mode_counts_exposures_and_a_client_that_left_it_out_is_no_user(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    proxy = await switchback(config(app, mode="declare"))
    for _ in range(2):
        await fetch(proxy.url, "/users/1", client="lean", headers=selecting("user(id,name)"))
    assert await gate(proxy, "user-role") == 0  # exposed twice, read never
    elements = await report(proxy)
    assert clients(elements["user-role"]) == {"lean": ("yes", 0, 2, False)}
    assert not elements["user-role"]["verdict"].startswith("in use")

    await fetch(proxy.url, "/users/1", client="reader", headers=selecting("user"))
    assert await gate(proxy, "user-role") == 3
    await fetch(proxy.url, "/users/1", client="lean")  # once without a list: it may read it
    elements = await report(proxy)
    assert clients(elements["user-role"]) == {
        "reader": ("yes", 1, 1, True),
        "lean": ("partly", 0, 3, True),
    }
    assert elements["user-role"]["verdict"] == "in use: 2 clients"
    found = counts(await proxy.metrics())
    assert found[("user-role", "exposure", "lean")] == 3
    assert found[("user-role", "read", "reader")] == 1
    assert ("user-role", "read", "lean") not in found


async def test_the_fields_section_reloads(switchback: StartProxy, app: TelemetryApp) -> None:
    proxy = await switchback(config(app, mode="off"))
    r = await fetch(proxy.url, "/users/1", headers=selecting("user(id"))  # ignored: off
    assert (r.status, r.body, r.values(PRUNED)) == (200, app.sent[-1], [])

    written = yaml.safe_load(proxy.config_path.read_text())
    written["fields"] = {"mode": "prune", "header": "X-Select"}
    proxy.config_path.write_text(yaml.safe_dump(written))
    assert (await proxy.admin_call("POST", "/reload"))[0] == 200
    r = await fetch(proxy.url, "/users/1", headers={"X-Select": "user/id"})
    assert orjson.loads(r.body) == {"user": {"id": "1"}}
    assert (r.values(PRUNED), r.values("Vary")) == (["yes"], ["X-Select"])
    r = await fetch(proxy.url, "/users/1", headers=selecting("user/id"))  # the old header
    assert orjson.loads(r.body) == USER

    good = proxy.config_path.read_text()
    proxy.config_path.write_text(good.replace("mode: prune", "mode: sometimes"))
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 400
    assert "fields.mode: 'sometimes' is not one of off, prune, declare" in body["error"]
    r = await fetch(proxy.url, "/users/1", headers={"X-Select": "user/id"})  # still pruning
    assert orjson.loads(r.body) == {"user": {"id": "1"}}
    assert sample(await proxy.metrics(), "switchback_config_reload_failures_total") == 1
