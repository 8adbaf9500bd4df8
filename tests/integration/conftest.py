"""Fixtures: real blue and green releases on loopback ports, and Switchback in front of them,
configured through a real YAML file and talked to over real sockets."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from proxy.app.runtime import Runtime
from proxy.config.load import load_config
from tests.integration.releases import (
    RawHandler,
    RawRelease,
    RecordingRelease,
    Release,
    Script,
    ScriptedRelease,
    start_release,
)

TOKEN = "test-token"


@dataclass
class Releases:
    blue: Release
    green: Release

    def __getitem__(self, name: str) -> Release:
        return {"blue": self.blue, "green": self.green}[name]


@pytest.fixture
async def releases() -> AsyncIterator[Releases]:
    blue, blue_runner = await start_release("blue")
    green, green_runner = await start_release("green")
    yield Releases(blue, green)
    await blue_runner.cleanup()
    await green_runner.cleanup()


def base_config(releases: Releases, state_dir: Path) -> dict[str, Any]:
    return {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0", "token": TOKEN},
        "state_dir": str(state_dir),
        "releases": {"blue": {"url": releases.blue.url}, "green": {"url": releases.green.url}},
        "traffic": {"stable": "blue", "weights": {"blue": 100, "green": 0}},
        "clients": {"id_header": "X-Client-Id"},
        "upstream": {"connect_timeout": 1.0, "response_timeout": 2.0},
        "server": {"drain_timeout": 2.0},
    }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def write_switchback_config(
    path: Path, releases: Releases, extra: dict[str, Any] | None = None
) -> Path:
    """The base config merged with ``extra``, as YAML at ``path``; state next to the file."""
    cfg = merge(base_config(releases, path.parent / "state"), extra or {})
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@dataclass
class Proxy:
    runtime: Runtime
    config_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.runtime.port}"

    @property
    def port(self) -> int:
        return self.runtime.port

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.runtime.admin_port}"

    async def metrics(self) -> Samples:
        """The live /metrics exposition, parsed: (sample name, labels) -> value."""
        return await scrape_metrics(self.admin)

    async def admin_call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await admin_request(self.admin, method, path, body)


async def scrape_metrics(admin: str) -> Samples:
    """``admin``'s /metrics exposition, parsed: (sample name, labels) -> value."""
    async with aiohttp.ClientSession() as s, s.get(admin + "/metrics") as r:
        text = await r.text()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


async def admin_request(admin: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """``method path`` on the admin listener at ``admin``, with the token: (status, JSON)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, admin + path, json=body, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


StartProxy = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def switchback(releases: Releases, tmp_path: Path) -> AsyncIterator[StartProxy]:
    """``await switchback(extra_config_dict)`` starts Switchback in this process (its log in
    ``<name>.log`` beside the config unless ``extra`` says otherwise)."""
    started: list[Runtime] = []

    async def start(extra: dict[str, Any] | None = None, name: str = "switchback.yaml") -> Proxy:
        # The log in a file next to the config (a test that reads it says where): the writer
        # thread may write after pytest stopped capturing this test's standard output.
        logs = {"logging": {"file": str(tmp_path / f"{name}.log")}}
        path = write_switchback_config(tmp_path / name, releases, merge(logs, extra or {}))
        runtime = Runtime(load_config(path))
        await runtime.start()
        started.append(runtime)
        return Proxy(runtime, path)

    yield start
    for runtime in started:
        await runtime.stop()


async def raw_exchange(
    port: int, request: bytes, timeout: float = 5.0
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Send raw request bytes; read one response (Content-Length, chunked or until close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(read_response(reader), timeout)
    finally:
        writer.close()


async def json_refusal(
    port: int, *parts: bytes
) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    """Send ``parts`` one write each (ignoring a reset once the proxy has answered) and read
    the answer: a JSON error, after which the connection must be closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        try:
            for part in parts:
                writer.write(part)
                await writer.drain()
        except ConnectionError:
            pass  # the proxy answered and closed while we were still sending
        status, headers, body = await asyncio.wait_for(read_response(reader), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed after the answer
    finally:
        writer.close()
    assert b"Traceback" not in body
    assert header_values(headers, "Content-Type") == ["application/json"]
    assert header_values(headers, "Connection") == ["close"]
    return status, headers, orjson.loads(body)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], bytes]:
    status, headers, body, _ = await read_response_and_trailers(reader)
    return status, headers, body


async def read_response_and_trailers(
    reader: asyncio.StreamReader,
) -> tuple[int, list[tuple[str, str]], bytes, list[tuple[str, str]]]:
    """One response: status, head fields, body, and the trailer fields of a chunked body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = _fields(lines[1:])
    names = {k.lower(): v for k, v in headers}
    trailers: list[tuple[str, str]] = []
    if "content-length" in names:
        body = await reader.readexactly(int(names["content-length"]))
    elif names.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                section = []
                while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                    section.append(line.decode("latin-1").rstrip("\r\n"))
                trailers = _fields(section)
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = await reader.read()
    return status, headers, body, trailers


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    return [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines if line)]


@pytest.fixture
async def scripted() -> AsyncIterator[Callable[..., Awaitable[ScriptedRelease]]]:
    """``await scripted(script, close_after=False)`` starts a ``ScriptedRelease``."""
    started: list[ScriptedRelease] = []

    async def start(script: Script, close_after: bool = False) -> ScriptedRelease:
        release = ScriptedRelease(script, close_after)
        await release.start()
        started.append(release)
        return release

    yield start
    for release in started:
        await release.close()


@pytest.fixture
async def raw_release() -> AsyncIterator[Callable[[RawHandler], Awaitable[RawRelease]]]:
    """``await raw_release(handler)`` starts a ``RawRelease`` serving with ``handler``."""
    started: list[RawRelease] = []

    async def start(handler: RawHandler) -> RawRelease:
        release = RawRelease(handler)
        await release.start()
        started.append(release)
        return release

    yield start
    for release in started:
        await release.close()


@pytest.fixture
async def recording() -> AsyncIterator[RecordingRelease]:
    """A release that records every request it gets and answers 200 with the target."""
    release = RecordingRelease()
    await release.start()
    yield release
    await release.close()


def refused_url() -> str:
    """The URL of a loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def header_values(headers: list[tuple[str, str]] | list[list[str]], name: str) -> list[str]:
    """Every value of the header ``name`` (any case), in order."""
    return [v for k, v in headers if k.lower() == name.lower()]


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value from ``Proxy.metrics()``; 0 when the series does not exist (yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on \S+:(\d+) \(admin \S+:(\d+)\)")


class ProxyProcess:
    """``python -m proxy run --config FILE`` (what ``switchback run`` does) as a child process;
    its ports come from its start-up log line; its log lines (standard output) and standard
    error are kept in ``log``, as they come."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []
        self.port = 0
        self.admin_port = 0
        self._listening = asyncio.Event()
        self._reader: asyncio.Future[Any] | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def wait_listening(self, timeout: float = 20.0) -> None:
        streams = [s for s in (self.proc.stdout, self.proc.stderr) if s is not None]
        self._reader = asyncio.gather(*(self._read(s) for s in streams))
        listening = asyncio.ensure_future(self._listening.wait())
        await asyncio.wait(
            {listening, self._reader}, timeout=timeout, return_when="FIRST_COMPLETED"
        )
        if not listening.done():
            listening.cancel()
            raise AssertionError("switchback exited or is not listening:\n" + "".join(self.log))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace")
            self.log.append(text)
            if not self.port and (found := _LISTENING.search(text)):
                self.port, self.admin_port = int(found[1]), int(found[2])
                self._listening.set()

    def peak_rss(self) -> int:
        """The process's peak resident set size so far (VmHWM), in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        kib = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        assert kib is not None
        return int(kib[1]) * 1024

    async def wait(self, timeout: float) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()


async def run_switchback(*args: str) -> asyncio.subprocess.Process:
    """``python -m proxy ARGS`` (the ``switchback`` command) with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "proxy",
        *args,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
async def switchback_process(
    releases: Releases, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[ProxyProcess]]]:
    """``await switchback_process(extra_config_dict)`` runs Switchback as a child process."""
    started: list[ProxyProcess] = []

    async def start(extra: dict[str, Any] | None = None) -> ProxyProcess:
        path = write_switchback_config(
            tmp_path / f"switchback-{len(started)}.yaml", releases, extra
        )
        proxy = ProxyProcess(await run_switchback("run", "--config", str(path)))
        started.append(proxy)
        await proxy.wait_listening()
        return proxy

    yield start
    for proxy in started:
        await proxy.stop()
