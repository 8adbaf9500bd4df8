"""A real Prometheus server for the tests (``/usr/bin/prometheus``, Debian's ``prometheus``
package, which .ci/run installs): scraping Switchback's admin listeners, with the shipped rules
loaded, queried through its HTTP API.

The shipped recording rules are evaluated every 30 s and the alerts wait minutes (``for:``);
a test cannot wait that long, so ``rules_for_test`` loads a copy of the shipped file with the
groups' ``interval`` and the alerts' ``for:`` rewritten, and nothing else changed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "config"
RULES = CONFIG / "prometheus-rules.yaml"
PROMETHEUS = shutil.which("prometheus")
SCRAPE = 0.5  # seconds between scrapes, and between rule evaluations

# Locally these tests are skipped when prometheus is missing; .ci/run installs it and sets
# SWITCHBACK_REQUIRE_PROMTOOL, so that CI fails instead of skipping.
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None and not os.environ.get("SWITCHBACK_REQUIRE_PROMTOOL"),
    reason="prometheus missing (.ci/run installs Debian's prometheus package)",
)


def shipped_rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def rules_for_test(interval: float = SCRAPE, for_seconds: float = 2.0) -> dict[str, Any]:
    """The shipped rules, each group evaluated every ``interval`` and each alert's ``for:``
    (where it has one) shortened to ``for_seconds``; expressions, labels and annotations as
    shipped."""
    rules = shipped_rules()
    for group in rules["groups"]:
        group["interval"] = f"{int(interval * 1000)}ms"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = f"{int(for_seconds * 1000)}ms"
    return rules


def recording_rule_names() -> set[str]:
    return {r["record"] for g in shipped_rules()["groups"] for r in g["rules"] if "record" in r}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Prometheus:
    """One running server and its HTTP API."""

    def __init__(self, url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log

    async def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET /api/v1/<path>: the whole answer (``status``, ``data`` or ``error``)."""
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s,
            s.get(f"{self.url}/api/v1/{path}", params=params) as r,
        ):
            answer: dict[str, Any] = await r.json(content_type=None)
            return answer

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's samples (``metric``, ``value``: [time, "text"])."""
        answer = await self.api("query", query=expr)
        assert answer["status"] == "success", f"{expr}: {answer}"
        data = answer["data"]
        assert data["resultType"] == "vector", f"{expr}: {data}"
        result: list[dict[str, Any]] = data["result"]
        return result

    async def values(self, expr: str, by: str) -> dict[str, float]:
        """An instant query's values, keyed by the label ``by``."""
        return {s["metric"].get(by, ""): float(s["value"][1]) for s in await self.query(expr)}

    async def scalar(self, expr: str) -> float | None:
        """The one sample's value of an instant query; None while it has none."""
        samples = await self.query(expr)
        assert len(samples) <= 1, f"{expr}: {samples}"
        return float(samples[0]["value"][1]) if samples else None

    async def wait_for(
        self,
        get: Callable[[], Awaitable[Any]],
        done: Callable[[Any], bool],
        what: str,
        timeout: float = 30.0,
    ) -> Any:
        """Ask ``get`` once per half scrape interval until ``done`` holds for its answer."""
        deadline = time.monotonic() + timeout
        while True:
            value = await get()
            if done(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {value}")
            if self.proc.returncode is not None:
                raise AssertionError("prometheus exited:\n" + self.log.read_text())
            await asyncio.sleep(SCRAPE / 2)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        async def ready() -> bool:
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as s,
                    s.get(self.url + "/-/ready") as r,
                ):
                    return r.status == 200
            except (aiohttp.ClientError, OSError, TimeoutError):
                return False

        await self.wait_for(ready, bool, "prometheus /-/ready", timeout)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


StartPrometheus = Callable[[list[str], dict[str, Any]], Awaitable[Prometheus]]


@pytest.fixture
async def prometheus(tmp_path: Path) -> AsyncIterator[StartPrometheus]:
    """``await prometheus(["127.0.0.1:<admin port>", ...], rules)`` starts a Prometheus that
    scrapes those admin listeners' /metrics every ``SCRAPE`` seconds with ``rules`` loaded,
    and returns once it is ready."""
    started: list[Prometheus] = []

    async def start(targets: list[str], rules: dict[str, Any]) -> Prometheus:
        assert PROMETHEUS is not None, "prometheus is required (SWITCHBACK_REQUIRE_PROMTOOL)"
        home = tmp_path / f"prometheus-{len(started)}"
        home.mkdir()
        (home / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
        interval = f"{int(SCRAPE * 1000)}ms"
        config = {
            "global": {
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "evaluation_interval": interval,
            },
            "rule_files": [str(home / "rules.yaml")],
            "scrape_configs": [
                {"job_name": "switchback", "static_configs": [{"targets": targets}]}
            ],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        port = free_port()
        log = home / "prometheus.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                PROMETHEUS,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
                stdout=out,
                stderr=out,
            )
        server = Prometheus(f"http://127.0.0.1:{port}", proc, log)
        started.append(server)
        await server.wait_ready()
        return server

    yield start
    for server in started:
        await server.stop()
