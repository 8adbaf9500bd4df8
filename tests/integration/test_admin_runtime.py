"""The admin listener of a running Switchback: health, status and the Prometheus exposition
after real traffic, and the token on everything that changes something."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import (
    TOKEN,
    Proxy,
    Releases,
    StartProxy,
    raw_exchange,
    refused_url,
    sample,
)
from tests.integration.helpers_rollout import poll

REQUESTS = "switchback_requests_total"
DURATION = "switchback_request_duration_seconds"
ERRORS = "switchback_upstream_errors_total"
WEIGHT = "switchback_traffic_weight"


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers or {}) as r:
        return r.status, await r.json(content_type=None)


async def send(proxy: Proxy, path: str, count: int = 1, release: str | None = None) -> None:
    header = f"X-Release: {release}\r\n" if release else ""
    for _ in range(count):
        await raw_exchange(proxy.port, f"GET {path} HTTP/1.1\r\nHost: h\r\n{header}\r\n".encode())


async def test_health_and_readiness(switchback: StartProxy) -> None:
    proxy = await switchback()
    assert await get(proxy.admin + "/healthz") == (200, {"status": "ok"})
    assert await get(proxy.admin + "/readyz") == (200, {"ready": True})


async def test_admin_paths_are_not_on_the_traffic_listener(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    for path in ("/healthz", "/metrics", "/status"):
        status, headers, _ = await raw_exchange(
            proxy.port, f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode()
        )
        assert ("X-Served-By", "blue") in headers
    assert [s["target"] for s in releases.blue.seen] == ["/healthz", "/metrics", "/status"]


async def test_status_describes_the_running_proxy(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {"traffic": {"weights": {"blue": 70, "green": 30}, "override_header": "X-Release"}}
    )
    await send(proxy, "/users/1", 4, release="blue")
    await send(proxy, "/users/1", 2, release="green")
    slow = asyncio.create_task(send(proxy, "/slow/0.8", release="green"))
    status, body = await poll(
        lambda: get(proxy.admin + "/status"),
        lambda answer: answer[1]["releases"]["green"]["in_flight"] == 1,
        5,
        "the slow request in flight on green",
    )
    assert status == 200
    assert body["stable"] == "blue"
    assert body["candidate"] == "green"
    assert body["weights"] == {"blue": 70, "green": 30}
    assert body["client_id_header"] == "X-Client-Id"
    assert body["config_file"] == str(proxy.config_path)
    blue, green = body["releases"]["blue"], body["releases"]["green"]
    assert (blue["url"], green["url"]) == (releases.blue.url, releases.green.url)
    assert (blue["weight"], green["weight"]) == (70, 30)
    assert (blue["in_flight"], green["in_flight"]) == (0, 1)
    assert (blue["requests"], green["requests"]) == (4, 2)
    first_uptime = body["uptime_seconds"]
    assert first_uptime > 0
    await slow
    _, body = await get(proxy.admin + "/status")
    assert body["releases"]["green"]["in_flight"] == 0
    assert body["releases"]["green"]["requests"] == 3
    assert body["uptime_seconds"] > first_uptime


async def test_metrics_count_the_traffic_sent(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback({"traffic": {"override_header": "X-Release"}})
    await send(proxy, "/users/1", 5)
    await send(proxy, "/status/404", 2)
    await send(proxy, "/status/503")
    await send(proxy, "/users/2", 3, release="green")
    await send(proxy, "/slow/0.3")
    samples = await proxy.metrics()
    assert sample(samples, REQUESTS, release="blue", code="200") == 6
    assert sample(samples, REQUESTS, release="blue", code="404") == 2
    assert sample(samples, REQUESTS, release="blue", code="503") == 1
    assert sample(samples, REQUESTS, release="green", code="200") == 3
    assert sample(samples, DURATION + "_count", release="blue") == 9
    assert sample(samples, DURATION + "_count", release="green") == 3
    # The histogram is cumulative and the slow request sits above 0.25 s.
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in samples.items()
        if name == DURATION + "_bucket" and dict(labels)["release"] == "blue"
    )
    counts = [value for _, value in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == (float("inf"), 9)
    assert dict(buckets)[0.25] == 8
    assert 0.3 <= sample(samples, DURATION + "_sum", release="blue") < 2
    assert sample(samples, WEIGHT, release="blue") == 100
    assert sample(samples, WEIGHT, release="green") == 0


async def test_metrics_exposition_is_valid_prometheus_text(switchback: StartProxy) -> None:
    proxy = await switchback()
    await send(proxy, "/users/1")
    async with aiohttp.ClientSession() as s, s.get(proxy.admin + "/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    families = {f.name: f.type for f in text_string_to_metric_families(text)}
    assert families["switchback_requests"] == "counter"
    assert families["switchback_request_duration_seconds"] == "histogram"
    assert families["switchback_traffic_weight"] == "gauge"


async def test_upstream_errors_are_counted_by_kind(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {
            "releases": {"green": {"url": refused_url()}},
            "traffic": {"weights": {"blue": 50, "green": 50}, "override_header": "X-Release"},
            "upstream": {"response_timeout": 0.3},
        }
    )
    await send(proxy, "/users/1", 2, release="green")  # refused, served by blue instead
    await send(proxy, "/slow/0.8", release="blue")  # 504
    samples = await proxy.metrics()
    assert sample(samples, ERRORS, release="green", kind="connect") == 2
    assert sample(samples, ERRORS, release="blue", kind="timeout") == 1
    assert sample(samples, REQUESTS, release="blue", code="200") == 2
    assert sample(samples, REQUESTS, release="blue", code="504") == 1
    assert sample(samples, REQUESTS, release="green", code="200") == 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong-token", "wrong-scheme"],
)
async def test_changes_need_the_token(
    switchback: StartProxy, releases: Releases, headers: dict[str, str]
) -> None:
    proxy = await switchback()
    async with aiohttp.ClientSession() as s:
        for method, path, body in [
            ("PUT", "/traffic", {"weights": {"green": 100}}),
            ("POST", "/rollback", None),
            ("POST", "/promote", None),
            ("POST", "/rollout", None),
            ("POST", "/reload", None),
        ]:
            async with s.request(method, proxy.admin + path, json=body, headers=headers) as r:
                assert r.status == 401, (method, path)
                assert r.headers["WWW-Authenticate"] == "Bearer"
                assert "error" in await r.json()
    # Nothing changed: traffic still goes to blue.
    await send(proxy, "/after")
    assert len(releases.blue.seen) == 1
    samples = await proxy.metrics()
    assert sample(samples, WEIGHT, release="green") == 0


async def test_a_weight_change_with_the_token_takes_effect(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    status, body = await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 100}})
    assert status == 200
    assert body["weights"] == {"blue": 0, "green": 100}
    await send(proxy, "/after", 3)
    assert len(releases.green.seen) == 3
    assert releases.blue.seen == []
    samples = await proxy.metrics()
    assert sample(samples, WEIGHT, release="green") == 100
    assert sample(samples, WEIGHT, release="blue") == 0
    status, _ = await proxy.admin_call("POST", "/rollback", {"reason": "test"})
    assert status == 200
    await send(proxy, "/back")
    assert [s["target"] for s in releases.blue.seen] == ["/back"]
