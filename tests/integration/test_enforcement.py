"""Sunset enforcement and brownouts through the running proxy, in front of real releases.

Dates are computed from the current time, so that a sunset has passed, a window covers now or
does not. Each refused request must not reach the release (``Release.seen``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import Proxy, Releases, StartProxy, read_response, sample

DOCS = "https://api.example.com/deprecations"


def stamp(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


PAST, FUTURE = stamp(dt.timedelta(days=-1)), stamp(dt.timedelta(days=30))
HOUR = dt.timedelta(hours=1)


def entry(id: str, **kw: Any) -> dict[str, Any]:
    return {"id": id, "deprecated": "2026-01-01", "link": f"{DOCS}/{id}", **kw}


def sunset_config() -> dict[str, Any]:
    enforced = {"sunset": PAST, "enforce": "after_sunset"}
    return {
        "deprecations": [
            entry("users-v0", endpoint="GET /v0/users/{id}", **enforced),
            entry("sort-by", param="sort_by", on="GET /users/{id}", **enforced),
            entry("legacy", request_field="options.legacy", on="POST /orders", **enforced),
            entry("user-role", field="user.role", **enforced),
            entry("item-role", field="items[].role", **enforced),
            entry("not-yet", param="page", sunset=FUTURE, enforce="after_sunset"),
            entry("never", param="limit", sunset=PAST),  # enforce: never (the default)
        ],
    }


async def get(
    proxy: Proxy, target: str, client: str = "web", **kw: Any
) -> tuple[int, dict[str, str], bytes]:
    headers = {"X-Client-Id": client, **kw.pop("headers", {})}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.request(kw.pop("method", "GET"), proxy.url + target, headers=headers, **kw) as r,
    ):
        return r.status, dict(r.headers), await r.read()


async def refused(proxy: Proxy, element: str, client: str, reason: str) -> float:
    return sample(
        await proxy.metrics(),
        "switchback_deprecated_refused_total",
        element=element,
        client=client,
        reason=reason,
    )


async def test_an_endpoint_after_its_sunset_is_gone(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(sunset_config())
    status, headers, body = await get(proxy, "/v0/users/7")
    assert status == 410
    error = orjson.loads(body)
    assert error["error"] == "deprecated_sunset"
    assert error["element"] == {
        "id": "users-v0",
        "kind": "endpoint",
        "what": "endpoint",
        "name": "GET /v0/users/{id}",
    }
    assert error["link"] == f"{DOCS}/users-v0" and error["sunset"] == PAST
    assert headers["Deprecation"] == "@1767225600"  # 2026-01-01
    assert "Sunset" in headers and f"<{DOCS}/users-v0>" in headers["Link"]
    assert releases.blue.seen == []
    assert await refused(proxy, "users-v0", "web", "sunset") == 1
    # A refused use is still a use: the report names the client.
    code, report = await proxy.admin_call("GET", "/deprecations")
    users = next(e for e in report["elements"] if e["id"] == "users-v0")
    assert code == 200 and [c["client"] for c in users["clients"]] == ["web"]


async def test_a_parameter_after_its_sunset_is_refused(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(sunset_config())
    status, _, body = await get(proxy, "/users/1?sort_by=name")
    assert status == 400
    assert orjson.loads(body)["element"]["what"] == "query parameter"
    assert releases.blue.seen == []
    # Not yet sunset, or not enforced: the app answers.
    assert (await get(proxy, "/users/1?page=2"))[0] == 200
    assert (await get(proxy, "/users/1?limit=2"))[0] == 200
    assert [r["target"] for r in releases.blue.seen] == ["/users/1?page=2", "/users/1?limit=2"]


async def test_a_request_field_after_its_sunset_is_refused_before_the_app_sees_it(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(sunset_config())
    legacy = orjson.dumps({"options": {"legacy": True}, "n": 1})
    status, _, body = await get(
        proxy, "/orders", method="POST", data=legacy, headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert orjson.loads(body)["element"]["id"] == "legacy"
    assert releases.blue.seen == []
    assert await refused(proxy, "legacy", "web", "sunset") == 1
    # Without the field the held body reaches the app whole (also chunked).
    fine = orjson.dumps({"options": {}, "n": 2})
    json = {"Content-Type": "application/json"}
    assert (await get(proxy, "/orders", method="POST", data=fine, headers=json))[0] == 200

    async def chunks() -> Any:
        yield fine[:5]
        yield fine[5:]

    assert (await get(proxy, "/orders", method="POST", data=chunks(), headers=json))[0] == 200
    assert [r["body"] for r in releases.blue.seen] == [fine, fine]


async def test_a_request_body_beyond_the_cap_is_not_held(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({**sunset_config(), "telemetry": {"max_body_bytes": 1024}})
    big = orjson.dumps({"options": {"legacy": True}, "pad": "x" * 4000})
    json = {"Content-Type": "application/json"}
    status, _, _ = await get(proxy, "/orders", method="POST", data=big, headers=json)
    assert status == 200  # streamed on unheld: the app decides
    assert [r["body"] for r in releases.blue.seen] == [big]
    skipped = sample(
        await proxy.metrics(), "switchback_inspection_skipped_total", reason="too_large"
    )
    assert skipped == 1


async def test_a_response_field_after_its_sunset_is_removed(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(sunset_config())
    status, headers, body = await get(proxy, "/users/1")
    assert status == 200
    assert orjson.loads(body) == {"user": {"id": "1", "name": "user 1"}}
    assert int(headers["Content-Length"]) == len(body)
    assert "Sunset" in headers
    status, _, body = await get(proxy, "/items")
    assert orjson.loads(body) == {"items": [{"id": 0}, {"id": 1}, {"id": 2}]}
    assert await refused(proxy, "item-role", "web", "sunset") == 1


async def test_a_removed_field_is_re_encoded_as_the_app_encoded_it(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(sunset_config())
    _, headers, body = await get(proxy, "/gzip", headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert orjson.loads(gzip.decompress(body)) == {"user": {"id": "1", "name": "user 1"}}
    _, headers, body = await get(proxy, "/gzip", headers={"Accept-Encoding": "br"})
    assert "Content-Encoding" not in headers  # the client does not take gzip: identity
    assert orjson.loads(body) == {"user": {"id": "1", "name": "user 1"}}


def brownout(**window: Any) -> dict[str, Any]:
    return {"deprecations": [entry("users-v0", endpoint="GET /v0/users/{id}", brownouts=[window])]}


async def test_a_one_off_brownout_under_way_refuses_and_one_to_come_does_not(
    switchback: StartProxy, releases: Releases
) -> None:
    end = stamp(HOUR)
    proxy = await switchback(brownout(start=stamp(-HOUR), end=end))
    status, _, body = await get(proxy, "/v0/users/1")
    assert status == 410
    assert orjson.loads(body)["error"] == "deprecated_brownout"
    assert orjson.loads(body)["brownout"]["end"] == end
    assert await refused(proxy, "users-v0", "web", "brownout") == 1
    later = await switchback(brownout(start=stamp(HOUR), end=stamp(2 * HOUR)), name="later.yaml")
    assert (await get(later, "/v0/users/1"))[0] == 200
    assert len(releases.blue.seen) == 1


async def test_a_recurring_brownout_covering_now(
    switchback: StartProxy, releases: Releases
) -> None:
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    weekday = start.strftime("%A").lower()
    proxy = await switchback(brownout(every=weekday, at=start.strftime("%H:%M"), **{"for": "10m"}))
    assert (await get(proxy, "/v0/users/1"))[0] == 410
    other_day = (start + dt.timedelta(days=1)).strftime("%A").lower()
    elsewhere = await switchback(
        brownout(every=other_day, at=start.strftime("%H:%M"), **{"for": "10m"}), name="b.yaml"
    )
    assert (await get(elsewhere, "/v0/users/1"))[0] == 200


async def test_a_percentage_brownout_refuses_the_same_share_of_clients_each_time(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(brownout(start=stamp(-HOUR), end=stamp(HOUR), percent=50))
    clients = [f"client-{i}" for i in range(40)]
    first = {c for c in clients if (await get(proxy, "/v0/users/1", c))[0] == 410}
    again = {c for c in clients if (await get(proxy, "/v0/users/1", c))[0] == 410}
    assert 5 < len(first) < 35 and again == first  # sticky per client
    assert len(releases.blue.seen) == 2 * (40 - len(first))


async def test_an_exempt_client_is_served(switchback: StartProxy, releases: Releases) -> None:
    config = sunset_config()
    config["deprecations"][0]["exempt"] = ["billing"]
    proxy = await switchback(config)
    assert (await get(proxy, "/v0/users/1", "billing"))[0] == 200
    assert (await get(proxy, "/v0/users/1", "web"))[0] == 410
    assert [r["target"] for r in releases.blue.seen] == ["/v0/users/1"]
    assert await refused(proxy, "users-v0", "billing", "sunset") == 0


async def test_status_and_report_show_enforced_elements_and_brownouts(
    switchback: StartProxy, releases: Releases
) -> None:
    config = sunset_config()
    start, end = stamp(HOUR), stamp(2 * HOUR)
    config["deprecations"][5]["brownouts"] = [{"start": start, "end": end}]
    proxy = await switchback(config)
    _, status = await proxy.admin_call("GET", "/status")
    by_id = {e["id"]: e for e in status["enforcement"]}
    assert set(by_id) == {"users-v0", "sort-by", "legacy", "user-role", "item-role", "not-yet"}
    assert by_id["users-v0"]["enforced"] is True
    assert by_id["not-yet"]["enforced"] is False
    assert by_id["not-yet"]["next_brownout"] == {"start": start, "end": end, "percent": 100}
    _, report = await proxy.admin_call("GET", "/deprecations")
    assert report["enforcement"] == status["enforcement"]

    from proxy.admin.views import format_status
    from proxy.core.report import format_table

    assert f"{start} to {end} (100%)" in format_status(status)
    assert "switched off since the sunset" in format_table(report)


@pytest.mark.parametrize("bad", [{"enforce": "after_sunset"}, {"brownouts": [{"every": "day"}]}])
async def test_a_reload_applies_enforcement_and_refuses_a_bad_one(
    switchback: StartProxy, releases: Releases, bad: dict[str, Any]
) -> None:
    import yaml

    proxy = await switchback({"deprecations": [entry("users-v0", endpoint="GET /v0/users/{id}")]})
    assert (await get(proxy, "/v0/users/1"))[0] == 200
    raw = yaml.safe_load(proxy.config_path.read_text())
    raw["deprecations"][0].update(sunset=PAST, enforce="after_sunset")
    proxy.config_path.write_text(yaml.safe_dump(raw))
    code, _ = await proxy.admin_call("POST", "/reload")
    assert code == 200
    assert (await get(proxy, "/v0/users/1"))[0] == 410
    raw["deprecations"][0].pop("sunset")
    raw["deprecations"][0].update(bad)
    proxy.config_path.write_text(yaml.safe_dump(raw))
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 400 and "deprecations[0]." in body["error"]
    assert (await get(proxy, "/v0/users/1"))[0] == 410  # the old config stays


async def test_a_held_body_on_one_connection_expect_continue_and_keep_alive(
    switchback: StartProxy, releases: Releases
) -> None:
    """A client that waits for 100 Continue gets it from the proxy while the body is held; a
    refused request whose body was read whole leaves the connection open for the next one."""
    proxy = await switchback(sunset_config())
    legacy = orjson.dumps({"options": {"legacy": True}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(
            b"POST /orders HTTP/1.1\r\nHost: x\r\nX-Client-Id: web\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(legacy)
        )
        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 100
        writer.write(legacy)
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 400 and orjson.loads(body)["element"]["id"] == "legacy"
        assert dict(headers).get("Connection") != "close"
        writer.write(b"GET /users/2?page=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
    finally:
        writer.close()
    assert [r["target"] for r in releases.blue.seen] == ["/users/2?page=1"]


async def test_pipelined_requests_with_held_bodies(
    switchback: StartProxy, releases: Releases
) -> None:
    """The second request's body is complete before its turn comes: held and judged at once."""
    proxy = await switchback(sunset_config())
    fine, legacy = orjson.dumps({"n": 1}), orjson.dumps({"options": {"legacy": 1}})

    def post(body: bytes) -> bytes:
        return (
            b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )

    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(post(fine) + post(legacy) + post(fine))
        statuses = [(await asyncio.wait_for(read_response(reader), 5))[0] for _ in range(3)]
    finally:
        writer.close()
    assert statuses == [200, 400, 200]
    assert [r["body"] for r in releases.blue.seen] == [fine, fine]


async def test_a_brownout_removes_a_response_field_whatever_enforce_says(
    switchback: StartProxy, releases: Releases
) -> None:
    window = {"start": stamp(-HOUR), "end": stamp(HOUR)}
    config = {"deprecations": [entry("user-role", field="user.role", brownouts=[window])]}
    proxy = await switchback(config)
    _, _, body = await get(proxy, "/users/3")
    assert orjson.loads(body) == {"user": {"id": "3", "name": "user 3"}}
    assert await refused(proxy, "user-role", "web", "brownout") == 1
    _, _, body = await get(proxy, "/items")  # no rule applies there: untouched
    assert orjson.loads(body)["items"][0] == {"id": 0, "role": "viewer"}


async def test_refused_requests_are_not_the_releases_answers_in_the_rollout_window(
    switchback: StartProxy, releases: Releases
) -> None:
    """A 410 Switchback sends itself says nothing of blue's health: the rollout's window (which
    judges error rate and p99) counts only what the release answered."""
    proxy = await switchback(sunset_config())
    for _ in range(5):
        assert (await get(proxy, "/v0/users/7"))[0] == 410
    assert (await get(proxy, "/users/1"))[0] == 200
    code, status = await proxy.admin_call("GET", "/status")
    assert code == 200 and status["releases"]["blue"]["requests"] == 1


async def test_a_refused_request_without_a_body_keeps_the_connection_open(
    switchback: StartProxy, releases: Releases
) -> None:
    """A 410 for a bodiless GET (a brownout refuses every request of a client) leaves nothing
    unread: the client's keep-alive connection serves the next request, also one pipelined."""
    proxy = await switchback(brownout(start=stamp(-HOUR), end=stamp(HOUR)))
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        gone = b"GET /v0/users/1 HTTP/1.1\r\nHost: x\r\nX-Client-Id: web\r\n\r\n"
        writer.write(gone)
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
        assert status == 410 and orjson.loads(body)["error"] == "deprecated_brownout"
        assert dict(headers).get("Connection") != "close" and "Deprecation" in dict(headers)
        writer.write(gone + b"GET /users/2 HTTP/1.1\r\nHost: x\r\n\r\n")
        statuses = [(await asyncio.wait_for(read_response(reader), 5))[0] for _ in range(2)]
        assert statuses == [410, 200]
    finally:
        writer.close()
    assert [r["target"] for r in releases.blue.seen] == ["/users/2"]
