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
