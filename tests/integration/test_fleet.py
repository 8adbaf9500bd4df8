"""A fleet: three real Switchback processes sharing one traffic state through a real Redis.

A change made on any replica reaches all; one leader drives a rollout on the sum of every
replica's traffic and fails over when killed; with Redis away the replicas serve the last state
they saw and nothing advances; when Redis returns, nobody is left behind and a local rollback
is not undone."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import TOKEN, Releases, run_switchback, sample
from tests.integration.fleet_helpers import (
    Fleet,
    RedisServer,
    call,
    fleet_view,
    leader_of,
    metrics,
    needs_redis,
    redis_server,
    status,
    wait_all,
    wait_link,
)
from tests.integration.helpers_rollout import (
    SwitchableRelease,
    green_switch_fixture,
    poll,
)

pytestmark = needs_redis
__all__ = ["green_switch_fixture", "redis_server"]  # fixtures


@pytest.fixture
async def fleet(
    releases: Releases, tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[Fleet]:
    f = Fleet(tmp_path, releases, redis_server.url)
    yield f
    await f.stop()


@pytest.fixture
async def switch_fleet(
    releases: Releases, tmp_path: Path, redis_server: RedisServer, green_switch: SwitchableRelease
) -> AsyncIterator[Fleet]:
    """A fleet whose green release can be made to fail."""
    f = Fleet(tmp_path, releases, redis_server.url)
    f.releases = type("R", (), {"blue": releases.blue, "green": green_switch})()
    yield f
    await f.stop()


def green_weight(s: dict[str, Any]) -> float:
    return float(s["weights"]["green"])


async def test_a_change_on_one_replica_reaches_every_replica(fleet: Fleet) -> None:
    r = await fleet.start(3)
    await call(r[1], "PUT", "/traffic", {"weights": {"green": 30}})
    await wait_all(r, lambda s: green_weight(s) == 30, "green at 30%")
    # The CLI on a third replica: an instant rollback, followed by every replica.
    proc = await run_switchback(
        "rollback", "--admin", r[2].admin, "--token", TOKEN, "--reason", "bad deploy"
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    found = await wait_all(
        r, lambda s: s["out_of_service"] == "green" and green_weight(s) == 0, "the rollback"
    )
    assert {s["rollout"]["reason"] for s in found} == {"bad deploy"}
    found_metrics = await poll(
        lambda: asyncio.gather(*(metrics(p) for p in r)),
        lambda ms: len({sample(m, "switchback_state_version") for m in ms}) == 1,
        10,
        "one version everywhere",
    )
    versions = [sample(m, "switchback_state_version") for m in found_metrics]
    assert versions[0] >= 2
    # The fleet view: every replica, once their heartbeats carry the new version.
    view = await poll(lambda: fleet_view(r[0]), lambda v: v["agree"], 10, "replicas agree")
    assert [row["replica"] for row in view["replicas"]] == ["r0", "r1", "r2"]
    assert view["versions"] == [versions[0]]
    proc = await run_switchback("status", "--fleet", "--admin", r[1].admin, "--token", TOKEN)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert "connected" in lines[0] and "redis://127.0.0.1:" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["r0", "r1", "r2"]
    assert "[this]" in lines[2]


async def test_a_rollout_advances_on_the_fleets_sum_of_traffic(fleet: Fleet) -> None:
    # 25 candidate requests are needed in the 4 s window; each replica gets at most 4 a second
    # (16 a window, never enough alone), the three together about 40.
    r = await fleet.start(3)
    await leader_of(r[0])
    sent: dict[int, list[float]] = {i: [] for i in range(3)}
    stop = asyncio.Event()

    async def load(i: int) -> None:
        async with aiohttp.ClientSession() as s:
            while not stop.is_set():
                async with s.get(r[i].url + "/users/1", headers={"X-Release": "green"}) as resp:
                    await resp.read()
                    if resp.headers.get("X-Served-By") == "green":
                        sent[i].append(time.monotonic())
                await asyncio.sleep(0.25)  # pacing the load, not waiting for an event

    tasks = [asyncio.create_task(load(i)) for i in range(3)]
    try:
        await call(
            r[2],
            "POST",
            "/rollout",
            {"steps": [10, 100], "step_seconds": 4, "min_requests": 25, "auto_promote": True},
        )
        await wait_all(r, lambda s: s["rollout"]["state"] == "promoted", "promotion", 40)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    for i in range(3):  # no replica alone ever had enough to judge
        times = sent[i]
        most = max((sum(1 for u in times if t - 5 < u <= t) for t in times), default=0)
        assert most < 25, f"replica {i} sent {most} green requests in 5 s"
    passed = [
        int(m[1])
        for p in r
        for line in p.log
        if (m := re.search(r"passed \(.* over (\d+) requests\)", line))
    ]
    assert passed and min(passed) >= 25, passed
    assert {s["stable"] for s in await asyncio.gather(*(status(p) for p in r))} == {"green"}


async def test_the_leader_fails_over_when_killed(fleet: Fleet) -> None:
    r = await fleet.start(3)
    first = await leader_of(r[0])
    victim = next(p for p, name in zip(r, ("r0", "r1", "r2"), strict=True) if name == first)
    victim.proc.kill()  # SIGKILL: no chance to hand the lease over
    await victim.proc.wait()
    alive = [p for p in r if p is not victim]
    view = await poll(
        lambda: fleet_view(alive[0]),
        lambda v: v.get("leader") not in (None, first),
        15,
        "a new leader",
    )
    assert view["leader"] in {"r0", "r1", "r2"} - {first}
    leaders = [sample(await metrics(p), "switchback_coordination_leader") for p in alive]
    assert sorted(leaders) == [0, 1]


async def test_fail_static_and_reconciliation(
    switch_fleet: Fleet, redis_server: RedisServer, green_switch: SwitchableRelease
) -> None:
    r = await switch_fleet.start(3)
    await call(
        r[0],
        "POST",
        "/rollout",
        {"steps": [20, 100], "step_seconds": 1, "min_requests": 1, "auto_promote": True},
    )
    await call(r[0], "POST", "/rollout/pause")
    await wait_all(r, lambda s: s["rollout"]["state"] == "paused", "paused everywhere")
    await redis_server.stop()
    await wait_link(r, "disconnected")
    # Redis is away: r0 resumes (locally); nothing advances, although its steps are due.
    await call(r[0], "POST", "/rollout/resume")
    errors = sample(await metrics(r[0]), "switchback_coordination_errors_total")
    await poll(
        lambda: metrics(r[0]),
        lambda m: sample(m, "switchback_coordination_errors_total") >= errors + 10,
        20,
        "ten more failed calls to Redis",
    )
    for p in r:
        s = await status(p)
        assert green_weight(s) == 20 and s["stable"] == "blue", s
        async with aiohttp.ClientSession() as session, session.get(p.url + "/users/1") as resp:
            assert resp.status == 200
    # A breach on r0 alone rolls back there at once, Redis or not.
    green_switch.status = 500

    async def failing(session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.get(r[0].url + "/x", headers={"X-Release": "green"}) as resp:
            await resp.read()
        return await status(r[0])

    async with aiohttp.ClientSession() as session:
        await poll(
            lambda: failing(session),
            lambda s: s["rollout"]["state"] == "rolled_back",
            15,
            "r0 rolled back",
        )
    assert (await status(r[1]))["rollout"]["state"] in ("ramping", "paused")
    # Redis returns, empty: nobody is left behind, and the rollback wins.
    await redis_server.start()
    await wait_link(r, "connected")
    found = await wait_all(r, lambda s: s["rollout"]["state"] == "rolled_back", "rolled back")
    assert {green_weight(s) for s in found} == {0.0}
    await poll(
        lambda: asyncio.gather(*(metrics(p) for p in r)),
        lambda ms: len({sample(m, "switchback_state_version") for m in ms}) == 1,
        15,
        "one version everywhere",
    )


async def test_a_stale_write_is_refused(fleet: Fleet, redis_server: RedisServer) -> None:
    from proxy.core.fleetstate import SharedState
    from proxy.fleet.store import Store

    r = await fleet.start(1)
    await call(r[0], "PUT", "/traffic", {"weights": {"green": 10}})
    await wait_all(r, lambda s: green_weight(s) == 10, "green at 10%")
    store = Store(redis_server.url, "switchback:test")
    try:
        now = await poll(
            store.read,
            lambda st: st is not None and st.weights["green"] == 10,
            10,
            "the change in Redis",
        )
        assert now is not None
        stale = SharedState(
            **{
                **{f: getattr(now, f) for f in now.__struct_fields__},
                "version": now.version,
                "weights": {"blue": 0, "green": 100},
            }
        )
        ok, stored = await store.compare_and_set(stale, now.version - 1)
        assert not ok and stored == now.version
        assert (await store.read()) == now
    finally:
        await store.close()
    assert green_weight(await status(r[0])) == 10
    assert sample(await metrics(r[0]), "switchback_state_version") == now.version
