"""After a rollback the candidate is out of production for every client: pinned clients and
the override header go to the stable release too, across a restart, until weights, a rollout
or a promotion bring the candidate back."""

from __future__ import annotations

import aiohttp

from tests.integration.conftest import Proxy, StartProxy


async def served_by(proxy: Proxy, client: str, release_header: str | None = None) -> str:
    headers = {"X-Client-Id": client}
    if release_header is not None:
        headers["X-Release"] = release_header
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x", headers=headers) as r:
        await r.read()
        assert r.status == 200
        return r.headers["X-Served-By"]


CONFIG = {
    "traffic": {
        "weights": {"blue": 50, "green": 50},
        "override_header": "X-Release",
        "pins": {"green": ["beta-app"]},
    }
}


async def test_rollback_takes_the_candidate_away_from_pins_and_overrides(
    switchback: StartProxy,
) -> None:
    proxy = await switchback(CONFIG)
    assert await served_by(proxy, "beta-app") == "green"
    assert await served_by(proxy, "someone", "green") == "green"

    code, body = await proxy.admin_call("POST", "/rollback", {"reason": "bad deploy"})
    assert code == 200, body
    assert body["out_of_service"] == "green"
    assert await served_by(proxy, "beta-app") == "blue"
    assert await served_by(proxy, "someone", "green") == "blue"

    await proxy.runtime.stop()
    again = await switchback(CONFIG, name="again.yaml")  # same state directory
    assert await served_by(again, "beta-app") == "blue"

    code, body = await again.admin_call("PUT", "/traffic", {"weights": {"green": 10}})
    assert code == 200, body
    assert body["out_of_service"] is None
    assert await served_by(again, "beta-app") == "green"
    assert await served_by(again, "someone", "green") == "green"
