"""Rollback, by command and automatically: the candidate leaves production on the very next
request, under load, without a failed client request; requests and WebSockets already on the
candidate are let finish; a candidate that starts failing or slows down during a rollout is
rolled back within two analysis windows, with the reason in the status and the metrics."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import aiohttp

from tests.integration.conftest import Proxy, Releases, StartProxy, sample
from tests.integration.helpers_rollout import (
    Load,
    SwitchableRelease,
    failed,
    fetch,
    green_switch_fixture,  # noqa: F401 - the green_switch fixture
    poll,
    status_of,
    wait_for_state,
)

HALF = {"traffic": {"weights": {"blue": 50, "green": 50}}}


async def rollbacks(proxy: Proxy) -> dict[str, float]:
    samples = await proxy.metrics()
    return {
        reason: sample(samples, "switchback_rollbacks_total", reason=reason)
        for reason in ("manual", "error_rate", "latency")
    }


async def rollout_state_gauge(proxy: Proxy) -> dict[str, float]:
    samples = await proxy.metrics()
    return {
        dict(labels)["state"]: value
        for (name, labels), value in samples.items()
        if name == "switchback_rollout_state"
    }


# -- by command --


async def test_rollback_under_load_takes_effect_on_the_next_request(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(HALF)
    loop = asyncio.get_running_loop()
    async with Load(proxy.url, clients=20) as load, aiohttp.ClientSession() as session:
        await load.wait_for_requests(200)
        on_green = sorted({r.client for r in load.results if r.served_by == "green"})
        assert on_green and len(on_green) < 20  # both releases serve clients before
        # Slow requests on the candidate, in flight when the rollback arrives.
        slow = [
            asyncio.create_task(fetch(session, proxy.url, "/slow/0.6", client))
            for client in on_green[:3]
        ]
        await poll(
            lambda: status_of(proxy),
            lambda s: s["releases"]["green"]["in_flight"] >= 3,
            5,
            "slow requests in flight on green",
        )
        code, body = await proxy.admin_call("POST", "/rollback", {"reason": "bad deploy"})
        acked = loop.time()
        assert code == 200, body
        assert body["weights"] == {"blue": 100.0, "green": 0.0}
        assert not any(task.done() for task in slow)
        await load.wait_for_requests_since(acked, 300)
        slow_results = await asyncio.gather(*slow)

    after = load.since(acked)
    assert len(after) >= 300
    assert {r.served_by for r in after} == {"blue"}
    assert {r.release for r in after} == {"blue"}  # the blue server itself answered
    assert {r.client for r in after} >= set(on_green)  # green's clients were moved, not lost
    assert failed(load.results) == []
    # The requests in flight on green were let finish there.
    assert [(r.status, r.served_by, r.release) for r in slow_results] == [
        (200, "green", "green")
    ] * len(slow)

    status = await status_of(proxy)
    assert status["rollout"]["state"] == "rolled_back"
    assert status["rollout"]["reason"] == "bad deploy"
    assert (await rollbacks(proxy))["manual"] == 1


async def test_rollback_closes_candidate_websockets_after_the_grace_only(
    switchback: StartProxy, releases: Releases
) -> None:
    """Tunnels to the candidate get 1012 once the grace is over (not before); tunnels to the
    stable release are left alone; clients reconnecting land on the stable release."""
    proxy = await switchback({**HALF, "rollout": {"websocket_grace": 0.5}})
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        sockets: dict[str, aiohttp.ClientWebSocketResponse] = {}
        for i in range(40):
            ws = await session.ws_connect(proxy.url + "/ws", headers={"X-Client-Id": f"ws-{i}"})
            await ws.send_str("hi")
            release = (await ws.receive_str(timeout=5)).split(":")[0]
            if release in sockets:
                await ws.close()
            else:
                sockets[release] = ws
            if len(sockets) == 2:
                break
        assert set(sockets) == {"blue", "green"}

        code, _ = await proxy.admin_call("POST", "/rollback", {})
        assert code == 200
        acked = loop.time()
        # Within the grace the candidate's tunnel still carries messages.
        await sockets["green"].send_str("still there")
        assert await sockets["green"].receive_str(timeout=5) == "green:still there"
        msg = await sockets["green"].receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.CLOSE
        assert msg.data == 1012
        assert loop.time() - acked >= 0.45
        # The stable release's tunnel is untouched.
        await sockets["blue"].send_str("after")
        assert await sockets["blue"].receive_str(timeout=5) == "blue:after"
        await sockets["blue"].close()
        await sockets["green"].close()


async def test_rollbacks_are_counted_once_and_as_manual_when_an_operator_asks(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 70, "green": 30}}})
    code, body = await proxy.admin_call("POST", "/rollback", {"reason": "error rate too high"})
    assert (code, body["rollout"]["reason"]) == (200, "error rate too high")
    assert await rollbacks(proxy) == {"manual": 1, "error_rate": 0, "latency": 0}
    # Asking again (a second operator, a retried script) changes nothing and counts nothing.
    code, body = await proxy.admin_call("POST", "/rollback", {"reason": "p99 latency"})
    assert (code, body["rollout"]["reason"]) == (200, "error rate too high")
    assert body["weights"] == {"blue": 100.0, "green": 0.0}
    assert await rollbacks(proxy) == {"manual": 1, "error_rate": 0, "latency": 0}
    # Green given traffic again by hand, then taken out again: that is a rollback.
    code, _ = await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 10}})
    assert code == 200
    code, body = await proxy.admin_call("POST", "/rollback")
    assert (code, body["weights"]) == (200, {"blue": 100.0, "green": 0.0})
    assert await rollbacks(proxy) == {"manual": 2, "error_rate": 0, "latency": 0}


# -- automatically, during a rollout --


def rollout_config(green: SwitchableRelease, **rollout: Any) -> dict[str, Any]:
    return {
        "releases": {"green": {"url": green.url}},
        "rollout": {
            "steps": [20, 50, 100],
            "step_seconds": 1.0,
            "min_requests": 10,
            "max_p99_ms": 5000,  # only the tests about latency lower it
            "websocket_grace": 0.1,
            **rollout,
        },
    }


async def test_green_starting_to_fail_is_rolled_back_within_two_windows(
    switchback: StartProxy, green_switch: SwitchableRelease
) -> None:
    proxy = await switchback(rollout_config(green_switch))
    loop = asyncio.get_running_loop()
    assert await rollbacks(proxy) == {"manual": 0, "error_rate": 0, "latency": 0}
    async with Load(proxy.url, clients=20) as load:
        code, body = await proxy.admin_call("POST", "/rollout")
        assert code == 200, body
        await wait_for_state(proxy, "ramping", 10, step=1)  # one healthy step passed
        green_switch.status = 500
        broke = loop.time()
        status = await wait_for_state(proxy, "rolled_back", 10)
        took = loop.time() - broke
        await load.wait_for_requests_since(broke + took, 100)

    assert took <= 2 * 1.0, f"rolled back {took:.2f} s after green began to fail"
    assert status["weights"] == {"blue": 100.0, "green": 0.0}
    assert "5xx" in status["rollout"]["reason"]
    assert status["rollout"]["reason"].startswith("green 5xx rate")
    assert (await rollbacks(proxy)) == {"manual": 0, "error_rate": 1, "latency": 0}
    # The operator, alerted, rolls back too: still one rollback, the automatic one.
    code, body = await proxy.admin_call("POST", "/rollback")
    assert (code, body["rollout"]["reason"]) == (200, status["rollout"]["reason"])
    assert (await rollbacks(proxy)) == {"manual": 0, "error_rate": 1, "latency": 0}
    gauge = await rollout_state_gauge(proxy)
    assert gauge["rolled_back"] == 1 and sum(gauge.values()) == 1
    # Blue serves everything from then on; only green's own answers were errors.
    # Every request that started once the rollback was seen went to blue.
    late = load.since(broke + took)
    assert len(late) >= 100 and {(r.status, r.served_by) for r in late} == {(200, "blue")}
    assert {r.served_by for r in failed(load.results)} <= {"green"}


async def test_green_slowing_down_is_rolled_back_on_latency(
    switchback: StartProxy, green_switch: SwitchableRelease
) -> None:
    proxy = await switchback(
        rollout_config(green_switch, steps=[50, 100], min_requests=5, max_p99_ms=400)
    )
    loop = asyncio.get_running_loop()
    async with Load(proxy.url, clients=30) as load:
        code, body = await proxy.admin_call("POST", "/rollout")
        assert code == 200, body
        await load.wait_for_requests(200)
        healthy = await status_of(proxy)
        assert healthy["rollout"]["state"] in ("ramping", "awaiting_promotion"), healthy
        green_switch.delay = 0.8
        slowed = loop.time()
        status = await wait_for_state(proxy, "rolled_back", 10)
        took = loop.time() - slowed

    # Two windows, plus the time the first slow answers take to end and be counted, plus room
    # for a busy machine (the load, the release and Switchback share one event loop here): the
    # latency check itself is shown by the reason and the metric below; without it, green
    # would reach 100% and wait for a promotion instead.
    assert took <= 2 * 1.0 + 0.8 + 2.0, f"rolled back {took:.2f} s after green slowed down"
    # Against the floor alone, or max(floor, factor x blue's p99) when blue had enough requests.
    assert re.match(r"green p99 \d+ ms > (max\()?400 ms", status["rollout"]["reason"]), status
    assert status["weights"] == {"blue": 100.0, "green": 0.0}
    assert (await rollbacks(proxy)) == {"manual": 0, "error_rate": 0, "latency": 1}
    assert (await rollout_state_gauge(proxy))["rolled_back"] == 1
    assert failed(load.results) == []  # slow, not broken: every client request succeeded


async def test_green_failing_while_awaiting_promotion_is_still_rolled_back(
    switchback: StartProxy, green_switch: SwitchableRelease
) -> None:
    """At 100% and waiting for an operator, green serves everyone: a breach must not wait."""
    proxy = await switchback(rollout_config(green_switch, steps=[50, 100]))
    async with Load(proxy.url, clients=20) as load:
        code, body = await proxy.admin_call("POST", "/rollout")
        assert code == 200, body
        await wait_for_state(proxy, "awaiting_promotion", 10)
        green_switch.status = 503
        status = await wait_for_state(proxy, "rolled_back", 5)
        loop = asyncio.get_running_loop()
        back = loop.time()
        await load.wait_for_requests_since(back, 100)
    assert re.match(r"green 5xx rate [\d.]+% > ", status["rollout"]["reason"]), status
    assert status["weights"] == {"blue": 100.0, "green": 0.0}
    assert (await rollbacks(proxy)) == {"manual": 0, "error_rate": 1, "latency": 0}
    assert {(r.status, r.served_by) for r in load.since(back)} == {(200, "blue")}
