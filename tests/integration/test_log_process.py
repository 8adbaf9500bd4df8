"""The log of a real ``python -m proxy run``: on standard output, in the configured format, and
never in the way of requests, even when nobody reads it."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import (
    REPO,
    ProxyProcess,
    Releases,
    sample,
    scrape_metrics,
    write_switchback_config,
)
from tests.integration.helpers_logs import parse_logfmt
from tests.integration.helpers_rollout import wait_until

StartProcess = Callable[..., Awaitable[ProxyProcess]]
_TEXT_ACCESS = re.compile(
    r"^\S+Z access 127\.0\.0\.1 (?P<client>\S+) (?P<release>\S+) (?P<method>\S+) "
    r"(?P<target>\S+) (?P<status>\d+) (?P<ms>[\d.]+)ms in=(?P<bytes_in>\d+) "
    r"out=(?P<bytes_out>\d+) (?P<outcome>\S+)$"
)
_F_SETPIPE_SZ = 1031  # Linux


def stdout_lines(proc: ProxyProcess) -> list[str]:
    return [line.rstrip("\n") for line in proc.log]


@pytest.mark.parametrize("fmt", ["text", "json", "logfmt"])
async def test_every_line_on_standard_output_has_the_configured_format(
    switchback_process: StartProcess, fmt: str
) -> None:
    proc = await switchback_process({"logging": {"format": fmt}})
    async with (
        aiohttp.ClientSession() as s,
        s.get(proc.url + "/hello?a=1", headers={"X-Client-Id": "c-7"}) as r,
    ):
        assert r.status == 200
    await wait_until(lambda: any("/hello?a=1" in line for line in proc.log), 10, "access")
    lines = stdout_lines(proc)
    (access,) = [line for line in lines if "/hello?a=1" in line]
    if fmt == "text":
        found = _TEXT_ACCESS.match(access)
        assert found is not None, access
        fields: dict[str, Any] = found.groupdict()
        assert " INFO switchback: switchback listening on " in lines[0]
    else:
        parse = orjson.loads if fmt == "json" else parse_logfmt
        records = [parse(line) for line in lines]  # every line parses, start-up line included
        assert records[0]["level"] == "info" and "listening on" in records[0]["msg"]
        fields = parse(access)
        assert fields["type"] == "access"
    assert (fields["client"], fields["release"], fields["method"]) == ("c-7", "blue", "GET")
    assert (str(fields["status"]), fields["outcome"]) == ("200", "ok")
    proc.proc.send_signal(signal.SIGTERM)
    assert await proc.wait(15) == 0
    assert "stopped" in proc.log[-1]  # the last line too, written before the process ended


async def test_a_log_nobody_reads_drops_lines_and_requests_still_complete(
    releases: Releases, tmp_path: Path
) -> None:
    path = write_switchback_config(
        tmp_path / "switchback.yaml", releases, {"logging": {"buffer": 20}}
    )
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, _F_SETPIPE_SZ, 4096)  # full after a few lines
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "run", "--config", str(path),
        cwd=REPO, stdout=write_end, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    os.close(write_end)
    try:
        start = await asyncio.wait_for(asyncio.to_thread(_read_until_listening, read_end), 20)
        found = re.search(r"listening on \S+:(\d+) \(admin \S+:(\d+)\)", start)
        assert found is not None, start
        url, admin = (f"http://127.0.0.1:{found[i]}" for i in (1, 2))
        # From here on nobody reads the pipe: the writer thread blocks in write().
        async with aiohttp.ClientSession() as s:

            async def client(n: int) -> list[int]:
                codes = []
                for i in range(100):
                    async with s.get(f"{url}/users/{n}-{i}") as r:
                        await r.read()
                        codes.append(r.status)
                return codes

            results = await asyncio.gather(*(client(n) for n in range(5)))
        assert [c for codes in results for c in codes] == [200] * 500
        samples = await scrape_metrics(admin)
        assert sample(samples, "switchback_requests_total", release="blue", code="200") == 500
        assert sample(samples, "switchback_log_dropped_total") > 400
    finally:
        proc.terminate()
        code = await asyncio.wait_for(proc.wait(), 20)
        os.close(read_end)
    assert code == 0


def _read_until_listening(fd: int) -> str:
    seen = b""
    while b"listening on" not in seen or not seen.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
    return seen.decode(errors="replace")
