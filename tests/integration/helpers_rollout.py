"""Helpers for the rollout, rollback, state and reload tests: a release whose failures can be
switched on at run time, client loops that record who served what and when, polling with a
deadline, and a real Switchback process to signal and kill."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import pytest
import yaml
from aiohttp import web
from aiohttp.web_request import BaseRequest

from tests.integration.conftest import (
    Proxy,
    ProxyProcess,
    Samples,
    admin_request,
    merge,
    run_switchback,
    scrape_metrics,
)

T = TypeVar("T")


# -- a release that can go bad while it runs --


class SwitchableRelease:
    """A release answering every request with ``{"release": name}`` after ``delay`` seconds and
    with ``status``; both can be changed while it serves, to make it fail or slow down."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.status = 200
        self.delay = 0.0
        self.requests = 0
        self.runner: web.ServerRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.ServerRunner(web.Server(self.handle), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        self.requests += 1
        await request.read()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(
            status=self.status,
            body=orjson.dumps({"release": self.name}),
            content_type="application/json",
            headers={"X-Release": self.name},
        )


@pytest.fixture(name="green_switch")
async def green_switch_fixture() -> AsyncIterator[SwitchableRelease]:
    """A switchable release to stand in for green (``{"releases": {"green": {"url": ...}}}``)."""
    release = SwitchableRelease("green")
    await release.start()
    yield release
    await release.close()


# -- client loops --


@dataclass(frozen=True)
class Result:
    client: str
    path: str
    started: float  # the event loop's clock
    ended: float
    status: int  # 0 when the request failed without an answer
    served_by: str | None
    release: str | None  # the X-Release header the release itself sent
    error: str | None = None


@dataclass
class Load:
    """``clients`` loops, each a distinct client id on its own keep-alive connection, sending
    ``GET path`` one after the other until stopped; every request's outcome is recorded."""

    url: str
    clients: int
    path: str = "/load"
    prefix: str = "client"
    pause: float = 0.002
    results: list[Result] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None

    def client_ids(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(self.clients)]

    async def __aenter__(self) -> Load:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, force_close=False),
            timeout=aiohttp.ClientTimeout(total=10),
        )
        self._tasks = [asyncio.create_task(self._loop(cid)) for cid in self.client_ids()]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self, client: str) -> None:
        assert self._session is not None
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            self.results.append(await fetch(self._session, self.url, self.path, client, loop))
            if self.pause:
                await asyncio.sleep(self.pause)

    def since(self, t: float) -> list[Result]:
        return [r for r in self.results if r.started >= t]

    async def wait_for_requests(self, n: int, timeout: float = 10.0) -> None:
        start = len(self.results)
        await wait_until(lambda: len(self.results) - start >= n, timeout, f"{n} requests")

    async def wait_for_requests_since(self, t: float, n: int, timeout: float = 10.0) -> None:
        """Until ``n`` requests that *started* at or after loop time ``t`` have ended (the
        requests in flight at ``t`` do not count, however many of them end later)."""
        await wait_until(lambda: len(self.since(t)) >= n, timeout, f"{n} requests since {t}")


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    path: str,
    client: str,
    loop: asyncio.AbstractEventLoop | None = None,
    headers: dict[str, str] | None = None,
) -> Result:
    """One request through the proxy as ``client``; failures are recorded, not raised."""
    loop = loop or asyncio.get_running_loop()
    started = loop.time()
    try:
        async with session.get(
            url + path, headers={"X-Client-Id": client, **(headers or {})}
        ) as resp:
            await resp.read()
            return Result(
                client,
                path,
                started,
                loop.time(),
                resp.status,
                resp.headers.get("X-Served-By"),
                resp.headers.get("X-Release"),
            )
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return Result(client, path, started, loop.time(), 0, None, None, repr(exc))


def failed(results: Iterable[Result]) -> list[Result]:
    return [r for r in results if r.status != 200]


def green_share(results: Iterable[Result]) -> float:
    rs = list(results)
    return sum(r.served_by == "green" for r in rs) / len(rs)


# -- waiting --


async def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


async def poll(
    get: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """Call ``get`` until ``done`` holds for its answer; return that answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = await get()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last: {value}")
        await asyncio.sleep(interval)


async def status_of(proxy: Proxy | Process) -> dict[str, Any]:
    code, body = await proxy.admin_call("GET", "/status")
    assert code == 200, body
    return dict(body)


async def wait_for_state(
    proxy: Proxy | Process, state: str, timeout: float, step: int | None = None
) -> dict[str, Any]:
    def reached(s: dict[str, Any]) -> bool:
        return s["rollout"]["state"] == state and (step is None or s["rollout"]["step"] == step)

    return await poll(lambda: status_of(proxy), reached, timeout, f"rollout state {state}")


def write_config(path: Path, config: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def read_config(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def edit_config(path: Path, change: dict[str, Any]) -> None:
    """Merge ``change`` into the config file at ``path``."""
    write_config(path, merge(read_config(path), change))


# -- Switchback in a subprocess --


class Process:
    """A ``ProxyProcess`` (``python -m proxy run --config FILE``) with the admin calls and the
    signals these tests need."""

    def __init__(self, inner: ProxyProcess) -> None:
        self.inner = inner

    @property
    def url(self) -> str:
        return self.inner.url

    @property
    def admin(self) -> str:
        return self.inner.admin

    @property
    def log(self) -> str:
        return "".join(self.inner.log)

    async def admin_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await admin_request(self.admin, method, path, body)

    async def metrics(self) -> Samples:
        """The live /metrics exposition, parsed as ``Proxy.metrics`` does."""
        return await scrape_metrics(self.admin)

    def send_signal(self, sig: int) -> None:
        self.inner.proc.send_signal(sig)

    async def kill(self) -> int:
        """SIGKILL: no drain, no goodbye, nothing flushed that was not already on disk."""
        if self.inner.proc.returncode is None:
            self.inner.proc.send_signal(signal.SIGKILL)
        return await self.inner.wait(15)

    async def terminate(self) -> int:
        if self.inner.proc.returncode is None:
            self.inner.proc.send_signal(signal.SIGTERM)
        return await self.inner.wait(15)


@dataclass
class Processes:
    """Started subprocesses, all killed at the end of the test whatever happened."""

    started: list[Process] = field(default_factory=list)

    async def start(self, config_path: Path) -> Process:
        inner = ProxyProcess(await run_switchback("run", "--config", str(config_path)))
        process = Process(inner)
        self.started.append(process)
        await inner.wait_listening()
        return process

    async def close(self) -> None:
        for process in self.started:
            await process.inner.stop()


@pytest.fixture(name="processes")
async def processes_fixture() -> AsyncIterator[Processes]:
    """``await processes.start(config_path)``; every process is killed when the test ends."""
    started = Processes()
    yield started
    await started.close()
