"""A response with a strong ETag that was inspected once is not held or parsed again: a strong
ETag names one representation byte for byte (RFC 9110 section 8.8.1). The release below breaks
that promise on purpose (same ETag, new body), which is how a test can see the cache at work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from tests.integration.conftest import StartProxy

WITH_ROLE = orjson.dumps({"user": {"id": 1, "role": "admin"}})
WITHOUT_ROLE = orjson.dumps({"user": {"id": 1, "roles": ["admin"]}})


class Release:
    def __init__(self) -> None:
        self.body = WITH_ROLE
        self.etag = '"v1"'

    async def handle(self, request: web.BaseRequest) -> web.Response:
        return web.Response(
            body=self.body, content_type="application/json", headers={"ETag": self.etag}
        )


@pytest.fixture
async def release() -> AsyncIterator[tuple[Release, str]]:
    app = Release()
    runner = web.ServerRunner(web.Server(app.handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield app, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


def config(url: str, **telemetry: Any) -> dict[str, Any]:
    return {
        "releases": {"blue": {"url": url}, "green": {"url": url}},
        "telemetry": telemetry,
        "deprecations": [{"id": "user-role", "field": "user.role", "deprecated": "2026-01-01"}],
    }


async def deprecation_header(url: str) -> str | None:
    async with aiohttp.ClientSession() as s, s.get(url + "/users/1") as r:
        await r.read()
        return r.headers.get("Deprecation")


async def test_a_strong_etag_seen_before_is_answered_from_what_was_found(
    switchback: StartProxy, release: tuple[Release, str]
) -> None:
    app, url = release
    proxy = await switchback(config(url))
    assert await deprecation_header(proxy.url) is not None
    app.body = WITHOUT_ROLE  # same strong ETag, different bytes: only a cache says "role"
    assert await deprecation_header(proxy.url) is not None
    app.etag = '"v2"'  # a new representation is inspected afresh
    assert await deprecation_header(proxy.url) is None


async def test_weak_etags_and_a_disabled_cache_inspect_every_response(
    switchback: StartProxy, release: tuple[Release, str]
) -> None:
    app, url = release
    app.etag = 'W/"v1"'
    proxy = await switchback(config(url))
    assert await deprecation_header(proxy.url) is not None
    app.body = WITHOUT_ROLE
    assert await deprecation_header(proxy.url) is None

    app.body, app.etag = WITH_ROLE, '"v1"'
    uncached = await switchback(config(url, etag_cache=0), name="uncached.yaml")
    assert await deprecation_header(uncached.url) is not None
    app.body = WITHOUT_ROLE
    assert await deprecation_header(uncached.url) is None


async def test_an_etag_inspected_on_one_release_says_nothing_of_the_other(
    switchback: StartProxy, release: tuple[Release, str]
) -> None:
    """Blue and green are two origins: green may reuse blue's ETag for other bytes. What was
    found in blue's representation is not applied to green's."""
    blue, blue_url = release
    green = Release()
    green.body = WITHOUT_ROLE  # the same ETag as blue's, a body without the field
    runner = web.ServerRunner(web.Server(green.handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        green_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        cfg = config(blue_url)
        cfg["releases"]["green"] = {"url": green_url}
        cfg["traffic"] = {"override_header": "X-Release"}
        proxy = await switchback(cfg)
        assert await deprecation_header(proxy.url) is not None  # blue, inspected
        async with (
            aiohttp.ClientSession() as s,
            s.get(proxy.url + "/users/1", headers={"X-Release": "green"}) as r,
        ):
            assert (await r.read(), r.headers["X-Served-By"]) == (WITHOUT_ROLE, "green")
            assert r.headers.get("Deprecation") is None
    finally:
        await runner.cleanup()
