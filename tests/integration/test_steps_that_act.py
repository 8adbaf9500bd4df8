"""A feature that answers a request itself, and one that rewrites a body, each take one step
module and one line where the pipeline is assembled: no change to the data plane.

The two steps below are such modules (kept here, since they are examples); each test adds
its step with one line, as ``Runtime.build_pipeline`` would, in front of real releases.
"""

from __future__ import annotations

import gzip

import aiohttp
import orjson

from proxy.pipeline import Exchange, Pipeline, Reply, Rewrite, Step
from tests.integration.conftest import Proxy, Releases, StartProxy, sample


class Maintenance(Step):
    """Answers every request under ``/admin-ui`` with a 503 of its own: the app is not called."""

    name = "maintenance"

    def request(self, ex: Exchange) -> Reply | None:
        if ex.path.startswith("/admin-ui"):
            return Reply.json(503, {"error": "maintenance"}, (b"Retry-After", b"120"))
        return None


class HideRole(Step):
    """Removes ``user.role`` from JSON answers about a user (a field switched off)."""

    name = "hide-role"

    def response_head(self, ex: Exchange) -> None:
        if ex.path.startswith("/users/") or ex.path == "/gzip":
            ex.want_response_body = True

    def response_body(self, ex: Exchange, body: bytes) -> Rewrite | None:
        if ex.response_header(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        data = orjson.loads(body)
        data["user"].pop("role", None)
        return Rewrite(orjson.dumps(data))


def add(proxy: Proxy, step: Step) -> None:
    """The one line: the step in the pipeline, before the step that records the exchange."""
    steps = proxy.runtime.pipeline.steps
    proxy.runtime.pipeline = Pipeline([*steps[:-1], step, steps[-1]])


async def test_a_step_answers_a_request_itself(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback()
    add(proxy, Maintenance())
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/admin-ui/settings") as r:
            assert (r.status, await r.json()) == (503, {"error": "maintenance"})
            assert r.headers["Retry-After"] == "120"
            assert "X-Served-By" not in r.headers
        async with s.get(proxy.url + "/users/3") as r:
            assert r.status == 200
    assert [seen["target"] for seen in releases.blue.seen] == ["/users/3"]
    samples = await proxy.metrics()
    assert sample(samples, "switchback_requests_total", release="blue", code="503") == 1


async def test_a_step_rewrites_a_body_and_the_data_plane_reframes_it(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    add(proxy, HideRole())
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        for path in ("/users/5", "/gzip"):
            async with s.get(proxy.url + path) as r:
                raw = await r.read()
                assert r.status == 200
                assert "Content-Encoding" not in r.headers  # sent identity, as rewritten
                assert int(r.headers["Content-Length"]) == len(raw)
                user = orjson.loads(raw)["user"]
                assert "role" not in user and user["name"].startswith("user ")
        async with s.get(proxy.url + "/items") as r:  # not a users answer: untouched
            assert orjson.loads(await r.read())["items"][0]["role"] == "viewer"
