"""The sample releases the demo and the proxy tests run against: blue and green must differ the
way the demo and the deprecation rules in config/dev.yaml expect (role versus role + roles)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from proxy.demo.sample_api import make_release_app

# Annotations are strings (see the __future__ import): TestClient's type parameters are not
# subscriptable at run time on every supported aiohttp.
Client = TestClient
MakeClient = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def blue(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(make_release_app("blue"))


@pytest.fixture
async def green(aiohttp_client: MakeClient) -> Client:
    return await aiohttp_client(make_release_app("green"))


async def get_json(client: Client, path: str, status: int = 200) -> Any:
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/json"
    return await resp.json()


async def test_blue_user_has_role_only(blue: Client) -> None:
    body = await get_json(blue, "/users/1")
    assert body == {"user": {"id": 1, "name": "Ada Lovelace", "role": "admin"}}


async def test_green_user_adds_roles_next_to_role(green: Client) -> None:
    body = await get_json(green, "/users/1")
    assert body == {"user": {"id": 1, "name": "Ada Lovelace", "role": "admin", "roles": ["admin"]}}


@pytest.mark.parametrize("release", ["blue", "green"])
@pytest.mark.parametrize("path", ["/users/1", "/users", "/v0/users/1", "/healthz", "/nowhere"])
async def test_every_response_names_its_release(
    aiohttp_client: MakeClient, release: str, path: str
) -> None:
    client = await aiohttp_client(make_release_app(release))
    resp = await client.get(path)
    assert resp.headers["X-Release"] == release


async def test_unknown_user_is_a_json_404(blue: Client) -> None:
    assert await get_json(blue, "/users/99", 404) == {"error": "no user 99"}
    assert await get_json(blue, "/users/abc", 404) == {"error": "no user abc"}


async def test_list_items_carry_role_and_sort_by_name(blue: Client) -> None:
    body = await get_json(blue, "/users?sort_by=name")
    assert [item["name"] for item in body["items"]] == [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
    ]
    assert all(set(item) == {"id", "name", "role"} for item in body["items"])


async def test_green_list_adds_roles_and_honours_order(green: Client) -> None:
    body = await get_json(green, "/users?sort_by=id&order=desc")
    assert [item["id"] for item in body["items"]] == [3, 2, 1]
    assert all(item["roles"] == [item["role"]] for item in body["items"])


async def test_blue_ignores_the_new_order_parameter(blue: Client) -> None:
    body = await get_json(blue, "/users?order=desc")
    assert [item["id"] for item in body["items"]] == [1, 2, 3]


@pytest.mark.parametrize("query", ["sort_by=password", "order=sideways"])
async def test_green_refuses_unknown_sort_and_order(green: Client, query: str) -> None:
    body = await get_json(green, f"/users?{query}", 400)
    assert query.split("=")[0] in body["error"]


@pytest.mark.parametrize("release", ["blue", "green"])
async def test_legacy_v0_endpoint_is_flat_in_both(aiohttp_client: MakeClient, release: str) -> None:
    client = await aiohttp_client(make_release_app(release))
    assert await get_json(client, "/v0/users/2") == {
        "id": 2,
        "name": "Grace Hopper",
        "role": "editor",
    }


async def test_post_creates_a_user_that_can_be_read_back(green: Client) -> None:
    resp = await green.post("/users", json={"name": "Edsger", "role": "editor"})
    assert resp.status == 201
    created = (await resp.json())["user"]
    assert created == {"id": 4, "name": "Edsger", "role": "editor", "roles": ["editor"]}
    assert resp.headers["Location"] == "/users/4"
    assert (await get_json(green, "/users/4"))["user"] == created


async def test_post_accepts_the_deprecated_legacy_option(blue: Client) -> None:
    resp = await blue.post("/users", json={"name": "Barbara", "options": {"legacy": True}})
    assert resp.status == 201
    assert (await resp.json())["user"] == {"id": 4, "name": "Barbara", "role": "viewer"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "invalid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"role": "admin"}', "name"),
        (b'{"name": "x", "options": true}', "options"),
    ],
)
async def test_post_refuses_bad_bodies(blue: Client, body: bytes, message: str) -> None:
    resp = await blue.post("/users", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert message in (await resp.json())["error"]


async def test_releases_do_not_share_created_users(blue: Client, green: Client) -> None:
    assert (await blue.post("/users", json={"name": "Only in blue"})).status == 201
    await get_json(green, "/users/4", 404)


async def test_fail_rate_fails_that_share_evenly_but_never_healthz(
    aiohttp_client: MakeClient,
) -> None:
    client = await aiohttp_client(make_release_app("green", fail_rate=0.5))
    statuses = [(await client.get("/users/1")).status for _ in range(6)]
    assert statuses == [200, 500] * 3
    assert all([(await client.get("/healthz")).status == 200 for _ in range(3)])


async def test_chaos_endpoint_switches_failures_on_and_off(green: Client) -> None:
    resp = await green.post("/_chaos", json={"fail_rate": 1})
    assert await resp.json() == {"release": "green", "fail_rate": 1.0}
    assert (await green.get("/users/1")).status == 500
    await green.post("/_chaos", json={"fail_rate": 0})
    assert (await green.get("/users/1")).status == 200
    assert (await green.post("/_chaos", json={"fail_rate": 1.5})).status == 400


def test_unknown_release_is_refused() -> None:
    with pytest.raises(ValueError, match="purple"):
        make_release_app("purple")
