"""A real ``redis-server`` on a free loopback port, and a fleet of Switchback processes that
share their traffic state through it. Without redis-server the fleet tests are skipped, unless
SWITCHBACK_REQUIRE_REDIS is set (``.ci/run`` installs Redis and sets it)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import (
    ProxyProcess,
    Samples,
    admin_request,
    run_switchback,
    sample,
    scrape_metrics,
    write_switchback_config,
)
from tests.integration.helpers_rollout import poll

REDIS_SERVER = shutil.which("redis-server")

needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None and not os.environ.get("SWITCHBACK_REQUIRE_REDIS"),
    reason="redis-server missing (.ci/run installs Debian's redis-server package)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """``redis-server`` on loopback, no persistence: a restart comes back empty."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        assert REDIS_SERVER is not None, "redis-server is required (SWITCHBACK_REQUIRE_REDIS)"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            async with asyncio.timeout(10):
                while True:
                    try:
                        if await client.ping():
                            return
                    except (OSError, aioredis.RedisError):
                        pass
                    assert self.proc.returncode is None, "redis-server exited at start"
                    await asyncio.sleep(0.02)
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.proc = None

    def client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    await server.start()
    yield server
    await server.stop()


class Fleet:
    """Three (or more) ``python -m proxy run`` replicas with one coordination key."""

    def __init__(self, base: Path, releases: Any, redis_url: str) -> None:
        self.base = base
        self.releases = releases
        self.redis_url = redis_url
        self.replicas: list[ProxyProcess] = []

    async def start(self, n: int, extra: dict[str, Any] | None = None) -> list[ProxyProcess]:
        for i in range(n):
            await self.add(f"r{i}", extra)
        return self.replicas

    async def add(self, name: str, extra: dict[str, Any] | None = None) -> ProxyProcess:
        cfg: dict[str, Any] = {
            "coordination": {
                "redis": self.redis_url,
                "key": "switchback:test",
                "replica": name,
                "lease_seconds": 1.0,
                "poll_seconds": 0.5,
            },
            "traffic": {"override_header": "X-Release"},
        }
        for key, value in (extra or {}).items():
            cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
        d = self.base / name
        d.mkdir(parents=True, exist_ok=True)
        path = write_switchback_config(d / "switchback.yaml", self.releases, cfg)
        proxy = ProxyProcess(await run_switchback("run", "--config", str(path)))
        self.replicas.append(proxy)
        await proxy.wait_listening()
        return proxy

    async def stop(self) -> None:
        for proxy in self.replicas:
            await proxy.stop()


async def call(proxy: ProxyProcess, method: str, path: str, body: Any = None) -> Any:
    code, answer = await admin_request(proxy.admin, method, path, body)
    assert code == 200, answer
    return answer


async def status(proxy: ProxyProcess) -> dict[str, Any]:
    return dict(await call(proxy, "GET", "/status"))


async def fleet_view(proxy: ProxyProcess) -> dict[str, Any]:
    return dict(await call(proxy, "GET", "/fleet"))


async def metrics(proxy: ProxyProcess) -> Samples:
    return await scrape_metrics(proxy.admin)


def link(samples: Samples) -> str:
    """The coordination state a replica's metrics say it is in."""
    for state in ("standalone", "connected", "disconnected"):
        if sample(samples, "switchback_coordination_state", state=state) == 1:
            return state
    return "?"


async def wait_all(
    replicas: list[ProxyProcess], done: Any, what: str, timeout: float = 15.0
) -> list[dict[str, Any]]:
    """Poll every replica's /status until ``done(status)`` holds for each."""
    found = []
    for proxy in replicas:
        found.append(await poll(lambda p=proxy: status(p), done, timeout, f"{what} ({proxy.url})"))
    return found


async def wait_link(replicas: list[ProxyProcess], state: str, timeout: float = 15.0) -> None:
    for proxy in replicas:
        await poll(
            lambda p=proxy: metrics(p),
            lambda m: link(m) == state,
            timeout,
            f"coordination {state} on {proxy.url}",
        )


async def leader_of(proxy: ProxyProcess, timeout: float = 15.0) -> str:
    view = await poll(
        lambda: fleet_view(proxy), lambda v: bool(v.get("leader")), timeout, "a leader"
    )
    return str(view["leader"])
