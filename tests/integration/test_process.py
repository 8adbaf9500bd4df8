"""Switchback as an operator runs it: ``switchback run`` / ``check`` as child processes, a bad
config refused with a message that says where, a damaged saved state refused until the
operator sets it aside, and SIGTERM draining what is in flight."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import (
    ProxyProcess,
    Releases,
    admin_request,
    header_values,
    raw_exchange,
    read_response,
    run_switchback,
    write_switchback_config,
)
from tests.integration.helpers_rollout import poll, wait_until


async def finished(*args: str) -> tuple[int, str, str]:
    proc = await run_switchback(*args)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


BAD = [
    ({"traffic": {"weights": {"blue": 100, "green": 140}}}, "traffic.weights.green", "140"),
    ({"upstream": {"response_timeout": "soon"}}, "upstream.response_timeout", "soon"),
    ({"releases": {"green": {"url": "ftp://files"}}}, "releases.green.url", "ftp://files"),
    ({"traffic": {"stable": "purple"}}, "traffic.stable", "purple"),
]


@pytest.mark.parametrize(("extra", "key", "value"), BAD[:2], ids=[b[1] for b in BAD[:2]])
async def test_run_refuses_a_bad_config_saying_where(
    releases: Releases, tmp_path: Path, extra: dict[str, Any], key: str, value: str
) -> None:
    path = write_switchback_config(tmp_path / "bad.yaml", releases, extra)
    started = time.monotonic()
    code, out, err = await finished("run", "--config", str(path))
    assert code != 0
    assert str(path) in err
    assert key in err
    assert value in err
    assert "Traceback" not in err + out
    assert time.monotonic() - started < 20  # refused at once, not after serving


async def test_run_with_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    code, out, err = await finished("run", "--config", str(path))
    assert code != 0
    assert str(path) in err
    assert "Traceback" not in err + out


async def test_run_when_the_port_is_taken(releases: Releases, tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        path = write_switchback_config(
            tmp_path / "taken.yaml", releases, {"listen": f"127.0.0.1:{port}"}
        )
        code, out, err = await finished("run", "--config", str(path))
    finally:
        server.close()
    assert code != 0
    assert "Traceback" not in err + out
    assert "switchback: cannot start" in err


async def test_check_accepts_a_good_file(releases: Releases, tmp_path: Path) -> None:
    path = write_switchback_config(tmp_path / "good.yaml", releases, {})
    code, out, err = await finished("check", str(path))
    assert code == 0, err
    assert str(path) in out
    assert "ok" in out


@pytest.mark.parametrize(("extra", "key", "value"), BAD, ids=[b[1] for b in BAD])
async def test_check_refuses_a_bad_file(
    releases: Releases, tmp_path: Path, extra: dict[str, Any], key: str, value: str
) -> None:
    path = write_switchback_config(tmp_path / "bad.yaml", releases, extra)
    code, out, err = await finished("check", str(path))
    assert code != 0
    assert str(path) in err and key in err and value in err
    assert "Traceback" not in err + out


async def rolled_back_state(releases: Releases, path: Path) -> bytes:
    """The traffic.json a real run leaves after a rollback of green from 30%."""
    proxy = ProxyProcess(await run_switchback("run", "--config", str(path)))
    try:
        await proxy.wait_listening()
        code, _ = await admin_request(proxy.admin, "PUT", "/traffic", {"weights": {"green": 30}})
        assert code == 200
        code, _ = await admin_request(proxy.admin, "POST", "/rollback", {"reason": "smoke"})
        assert code == 200
        proxy.proc.send_signal(signal.SIGTERM)
        assert await proxy.wait(timeout=15) == 0
    finally:
        await proxy.stop()
    return (path.parent / "state" / "traffic.json").read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "other version"])
async def test_run_refuses_a_damaged_saved_state_until_it_is_set_aside(
    releases: Releases, tmp_path: Path, damage: str
) -> None:
    path = write_switchback_config(tmp_path / "switchback.yaml", releases, {})
    state = tmp_path / "state" / "traffic.json"
    if damage == "truncated":  # a real save, cut short
        whole = await rolled_back_state(releases, path)
        bad = whole[: len(whole) // 2]
        problem = "not valid JSON, cut short or damaged (Input data was truncated)"
    elif damage == "corrupt":
        state.parent.mkdir()
        bad = b"\x00\x00\x00\x00 what a dying disk returned \xff\xfe"
        problem = "not valid JSON, cut short or damaged"
    else:
        whole = await rolled_back_state(releases, path)
        bad = whole.replace(b'"version": 1', b'"version": 2')
        problem = "format version 2; this Switchback reads 1"
    state.write_bytes(bad)

    code, out, err = await finished("run", "--config", str(path))
    assert code == 1
    assert "Traceback" not in out + err and "listening on" not in err
    (message,) = [line for line in err.splitlines() if line.startswith("switchback: ")]
    assert message.startswith(f"switchback: cannot start: saved traffic state {state}: {problem}")
    assert "does not fall back to the split in" in message
    assert f"`switchback state reset --config {path}`" in message
    assert state.read_bytes() == bad  # nothing touched it

    code, out, err = await finished("state", "show", "--config", str(path))
    assert code == 1 and problem in err and "Traceback" not in out + err
    code, out, err = await finished("state", "reset", "--config", str(path))
    assert code == 0, err
    (moved,) = state.parent.glob("traffic.json.unusable-*")
    assert moved.read_bytes() == bad
    assert f"set aside as {moved}" in out

    proxy = ProxyProcess(await run_switchback("run", "--config", str(path)))
    try:
        await proxy.wait_listening()
        code, status = await admin_request(proxy.admin, "GET", "/status")
        assert (status["source"], status["weights"]) == ("config", {"blue": 100.0, "green": 0.0})
        assert status["persisted"] is True
        reply = await raw_exchange(proxy.port, b"GET /users/1 HTTP/1.1\r\nHost: h\r\n\r\n")
        assert reply[0] == 200
    finally:
        await proxy.stop()
    assert "Traceback" not in "".join(proxy.log)


async def connection_refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


async def test_sigterm_drains_the_request_in_flight(
    switchback_process: Any, releases: Releases
) -> None:
    proxy: ProxyProcess = await switchback_process({"server": {"drain_timeout": 5.0}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /slow/1.5 HTTP/1.1\r\nHost: h\r\n\r\n")
        await writer.drain()
        await wait_until(lambda: bool(releases.blue.seen), 5, "the request at the release")
        sent_at = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        # New connections are refused at once ...
        await poll(
            lambda: connection_refused(proxy.port),
            bool,
            1,
            "the traffic port to stop accepting connections while draining",
        )
        # ... the admin listener says "not ready" meanwhile ...
        async with aiohttp.ClientSession() as s, s.get(proxy.admin + "/readyz") as r:
            assert r.status == 503
        # ... and the request in flight is answered in full.
        status, headers, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert status == 200
    assert orjson.loads(body) == {"release": "blue", "slow": True}
    assert header_values(headers, "Connection") == ["close"]
    code = await proxy.wait(timeout=5)
    assert code == 0
    assert time.monotonic() - sent_at < 5.0
    assert "Traceback" not in "".join(proxy.log)


async def test_sigterm_with_an_idle_keep_alive_connection_exits_at_once(
    switchback_process: Any, releases: Releases
) -> None:
    proxy: ProxyProcess = await switchback_process({"server": {"drain_timeout": 5.0}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /users/1 HTTP/1.1\r\nHost: h\r\n\r\n")
        status, _, _ = await asyncio.wait_for(read_response(reader), 5)
        assert status == 200
        started = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        assert await proxy.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0  # an idle connection does not hold the drain
        assert await asyncio.wait_for(reader.read(), 2) == b""
    finally:
        writer.close()


async def test_sigterm_cuts_what_outlasts_the_drain_timeout(
    switchback_process: Any, releases: Releases
) -> None:
    proxy: ProxyProcess = await switchback_process({"server": {"drain_timeout": 0.5}})
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(b"GET /slow/2 HTTP/1.1\r\nHost: h\r\n\r\n")
        await writer.drain()
        await wait_until(lambda: bool(releases.blue.seen), 5, "the request at the release")
        started = time.monotonic()
        os.kill(proxy.pid, signal.SIGTERM)
        assert await proxy.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0
        try:
            rest = await asyncio.wait_for(reader.read(), 2)
        except ConnectionResetError:
            rest = b""
        assert rest == b""  # cut, with no response that could pass for a complete one
    finally:
        writer.close()
    assert "drain timeout" in "".join(proxy.log)


async def test_sigterm_tells_websocket_clients_to_reconnect(
    switchback_process: Any, releases: Releases
) -> None:
    """A WebSocket is no request in flight that will end by itself: on SIGTERM its client
    gets a Close frame with 1012 (service restart) at once, and the stop does not wait out
    the drain timeout for it."""
    proxy: ProxyProcess = await switchback_process({"server": {"drain_timeout": 10.0}})
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(proxy.url + "/ws") as ws:
            await ws.send_str("hi")
            assert await ws.receive_str(timeout=5) == "blue:hi"
            started = time.monotonic()
            os.kill(proxy.pid, signal.SIGTERM)
            msg = await ws.receive(timeout=5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert msg.data == 1012
    assert await proxy.wait(timeout=5) == 0
    assert time.monotonic() - started < 3.0
