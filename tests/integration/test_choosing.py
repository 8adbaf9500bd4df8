"""Which release serves a request, seen from the outside: override header, then pins, then the
sticky weighted split, on real requests through a running Switchback."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp

from tests.integration.conftest import Proxy, Releases, StartProxy

CLIENTS = [f"client-{i:04d}" for i in range(400)]


async def served_by(
    session: aiohttp.ClientSession, proxy: Proxy, headers: dict[str, str] | None = None
) -> str:
    async with session.get(proxy.url + "/choose", headers=headers or {}) as resp:
        assert resp.status == 200
        body = await resp.json()
        assert resp.headers["X-Served-By"] == body["release"]
        return str(body["release"])


async def assignment(proxy: Proxy, clients: list[str]) -> dict[str, str]:
    """Client id -> the release that served it, over real requests."""
    connector = aiohttp.TCPConnector(limit=16)
    async with aiohttp.ClientSession(connector=connector) as session:
        got = await asyncio.gather(
            *(served_by(session, proxy, {"X-Client-Id": c}) for c in clients)
        )
    return dict(zip(clients, got, strict=True))


async def test_override_header_wins_over_weights_and_pins(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {
            "traffic": {
                "weights": {"blue": 100, "green": 0},
                "override_header": "X-Release",
                "pins": {"blue": ["pinned-to-blue"]},
            }
        }
    )
    async with aiohttp.ClientSession() as session:
        assert await served_by(session, proxy, {"X-Release": "green"}) == "green"
        assert await served_by(session, proxy, {"X-Release": " GREEN "}) == "green"
        both = {"X-Release": "green", "X-Client-Id": "pinned-to-blue"}
        assert await served_by(session, proxy, both) == "green"
        # A name that is no release is ignored: the weights decide.
        assert await served_by(session, proxy, {"X-Release": "purple"}) == "blue"
        assert await served_by(session, proxy) == "blue"
    assert len(releases.green.seen) == 3


async def test_override_header_is_ignored_when_disabled(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 100, "green": 0}}})
    async with aiohttp.ClientSession() as session:
        for value in ("green", "GREEN", "blue"):
            assert await served_by(session, proxy, {"X-Release": value}) == "blue"
    assert releases.green.seen == []
    # The header itself still reaches the app untouched.
    assert (b"X-Release", b"green") in releases.blue.seen[0]["headers"]  # type: ignore[operator]


async def test_pins_win_over_weights(switchback: StartProxy, releases: Releases) -> None:
    proxy = await switchback(
        {
            "traffic": {
                "weights": {"blue": 100, "green": 0},
                "pins": {"green": ["beta-tester", "qa-bot"]},
            }
        }
    )
    got = await assignment(proxy, ["beta-tester", "qa-bot", *CLIENTS[:50]])
    assert got.pop("beta-tester") == "green"
    assert got.pop("qa-bot") == "green"
    assert set(got.values()) == {"blue"}


async def test_pins_to_the_stable_release_hold_at_full_candidate_weight(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(
        {"traffic": {"weights": {"blue": 0, "green": 100}, "pins": {"blue": ["legacy-app"]}}}
    )
    got = await assignment(proxy, ["legacy-app", *CLIENTS[:50]])
    assert got.pop("legacy-app") == "blue"
    assert set(got.values()) == {"green"}


async def test_weighted_split_is_near_the_weight_and_sticky(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 50, "green": 50}}})
    first = await assignment(proxy, CLIENTS)
    share = Counter(first.values())["green"] / len(CLIENTS)
    assert 0.40 <= share <= 0.60, share
    for _ in range(2):  # every client keeps its release, request after request
        assert await assignment(proxy, CLIENTS) == first
    assert len(releases.blue.seen) + len(releases.green.seen) == 3 * len(CLIENTS)


async def test_changing_weights_moves_clients_one_way_only(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 80, "green": 20}}})
    at_20 = await assignment(proxy, CLIENTS)
    status, _ = await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 50}})
    assert status == 200
    at_50 = await assignment(proxy, CLIENTS)
    moved = {c for c in CLIENTS if at_20[c] != at_50[c]}
    assert moved  # some clients moved ...
    assert all(at_20[c] == "blue" and at_50[c] == "green" for c in moved)  # ... to green only
    green_20 = Counter(at_20.values())["green"]
    green_50 = Counter(at_50.values())["green"]
    assert 0.12 <= green_20 / len(CLIENTS) <= 0.28
    assert 0.40 <= green_50 / len(CLIENTS) <= 0.60
    # Back to 20%: exactly the clients that moved go back; nobody else changes.
    status, _ = await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 20}})
    assert status == 200
    assert await assignment(proxy, CLIENTS) == at_20


async def test_clients_without_an_id_stick_by_address(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 50, "green": 50}}})
    async with aiohttp.ClientSession() as session:
        got = {await served_by(session, proxy) for _ in range(20)}
    assert len(got) == 1
