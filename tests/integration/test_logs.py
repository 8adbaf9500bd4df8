"""The access log and the event lines of a running proxy, read back from ``logging.file``.

Each test runs Switchback in this process with the log in a file, sends real requests to real
releases and waits for the lines it needs (the writer thread writes them a little later).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from proxy.errors import ConfigError
from tests.integration.conftest import (
    Proxy,
    Releases,
    StartProxy,
    raw_exchange,
    refused_url,
    sample,
)
from tests.integration.helpers_logs import lines_of, parse, records

FORMATS = ("json", "logfmt")


def log_config(path: Path, fmt: str, **more: Any) -> dict[str, Any]:
    return {"logging": {"format": fmt, "file": str(path), **more}}


def access(target: str) -> Any:
    return lambda r: r.get("type") == "access" and r.get("target") == target


def event(name: str) -> Any:
    return lambda r: r.get("event") == name


async def get(proxy: Proxy, target: str, **headers: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + target, headers=headers) as r:
        return r.status, await r.read()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_an_ordinary_request_has_one_access_line_with_its_fields(
    switchback: StartProxy, tmp_path: Path, fmt: str
) -> None:
    log = tmp_path / "access.log"
    proxy = await switchback(log_config(log, fmt))
    status, body = await get(proxy, "/users/7?x=1", **{"X-Client-Id": "mobile-app"})
    assert status == 200
    payload = b"x" * 1000
    request = b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + payload
    posted, _, _ = await raw_exchange(proxy.port, request)
    assert posted == 200
    (line,) = await records(log, fmt, access("/users/7?x=1"))
    assert line["client"] == "mobile-app"
    assert line["peer"] == "127.0.0.1"
    assert line["release"] == "blue"
    assert line["method"] == "GET"
    assert str(line["status"]) == "200"
    assert line["outcome"] == "ok"
    assert int(line["bytes_in"]) == 0
    assert int(line["bytes_out"]) > len(body)  # the head too
    assert 0 <= float(line["duration_ms"]) < 10_000
    assert line["deprecated"] in ([], "")
    assert time.time() - 60 < _epoch(line["time"]) <= time.time() + 1
    (post,) = await records(log, fmt, access("/orders"))
    assert int(post["bytes_in"]) == 1000
    assert post["method"] == "POST"


def _epoch(iso: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_502_says_which_release_failed_and_why(
    switchback: StartProxy, tmp_path: Path, fmt: str
) -> None:
    log = tmp_path / "access.log"
    extra = {
        "releases": {"green": {"url": refused_url()}},
        "traffic": {"weights": {"blue": 0, "green": 100}},
    }
    proxy = await switchback({**extra, **log_config(log, fmt)})
    status, _ = await get(proxy, "/down")
    assert status == 502
    (line,) = await records(log, fmt, access("/down"))
    assert str(line["status"]) == "502"
    assert line["release"] == "green"
    assert line["outcome"] == "upstream_connect"


async def test_a_refused_request_is_logged_and_refusal_events_are_rate_limited(
    switchback: StartProxy, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    proxy = await switchback({"limits": {"max_body_bytes": 100}, **log_config(log, "json")})
    # Chunked: the limit is found in the body, once the exchange has begun (an announced
    # Content-Length over it is refused before: a refusal event, but no exchange to log).
    chunk = b"y" * 1000
    request = (
        b"POST /big HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk)
    )
    began = time.monotonic()
    for _ in range(20):
        status, _, _ = await raw_exchange(proxy.port, request)
        assert status == 413
    elapsed = time.monotonic() - began
    lines = await records(log, "json", access("/big"), count=20)
    assert {(r["status"], r["outcome"]) for r in lines} == {(413, "rejected")}
    # Each refusal is either a line of its own or counted as suppressed by a later line.
    summary = await records(log, "json", event("refused_more"))
    logged = [r for r in map(_json, lines_of(log)) if r.get("event") == "refused"]
    assert {r["reason"] for r in logged + summary} == {"body_size"}
    assert len(logged) + sum(r["suppressed"] for r in logged + summary) == 20
    assert len(logged) <= elapsed + 1
    samples = await proxy.metrics()
    assert sample(samples, "switchback_rejected_total", reason="body_size") == 20


def _json(line: str) -> dict[str, Any]:
    return parse("json", line)


@pytest.mark.parametrize("fmt", FORMATS)
async def test_the_deprecated_elements_of_an_exchange_are_on_its_line(
    switchback: StartProxy, tmp_path: Path, fmt: str
) -> None:
    log = tmp_path / "access.log"
    deprecations = [
        {"id": "user-role", "field": "user.role", "deprecated": "2026-06-01"},
        {"id": "sort-by", "param": "sort_by", "deprecated": "2026-05-01"},
    ]
    proxy = await switchback({"deprecations": deprecations, **log_config(log, fmt)})
    assert (await get(proxy, "/users/1?sort_by=name"))[0] == 200
    (line,) = await records(log, fmt, access("/users/1?sort_by=name"))
    found = line["deprecated"]
    names = found if isinstance(found, list) else found.split(",")
    assert sorted(names) == ["sort-by", "user-role"]


@pytest.mark.parametrize("fmt", FORMATS)
async def test_a_target_cannot_break_the_line(
    switchback: StartProxy, tmp_path: Path, fmt: str
) -> None:
    log = tmp_path / "access.log"
    proxy = await switchback(log_config(log, fmt))
    # The parser refuses control and non-ASCII bytes in a target (unit tests cover them):
    # quotes and backslashes get through.
    raw = b'/q"x\\y?a=%0D%0A"<>'
    status, _, _ = await raw_exchange(proxy.port, b"GET " + raw + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert status == 200
    (line,) = await records(log, fmt, access("/q\\x22x\\x5cy?a=%0D%0A\\x22<>"))
    assert line["status"] in (200, "200")
    assert all(parse(fmt, text) for text in lines_of(log))  # every line still parses


async def test_traffic_changes_rollouts_and_rollbacks_are_events(
    switchback: StartProxy, tmp_path: Path
) -> None:
    log = tmp_path / "events.log"
    proxy = await switchback({"rollout": {"steps": [10, 100]}, **log_config(log, "json")})
    assert (await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 25}}))[0] == 200
    (weights,) = await records(log, "json", event("weights"))
    assert (weights["blue"], weights["green"]) == (75.0, 25.0)
    assert weights["level"] == "info" and weights["logger"] == "switchback.control"
    assert (await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 0}}))[0] == 200
    assert (await proxy.admin_call("POST", "/rollout"))[0] == 200
    (step,) = await records(log, "json", event("rollout_step"))
    assert (step["state"], step["candidate"], step["weight"]) == ("ramping", "green", 10.0)
    code, _ = await proxy.admin_call("POST", "/rollback", {"reason": "bad\nrelease"})
    assert code == 200
    (rollback,) = await records(log, "json", event("rollback"))
    assert rollback["state"] == "rolled_back"
    assert rollback["reason"] == "bad\nrelease"
    assert rollback["weight"] == 0.0
    assert (await proxy.admin_call("PUT", "/traffic", {"weights": {"green": 10}}))[0] == 200
    assert (await proxy.admin_call("POST", "/promote"))[0] == 200
    (promotion,) = await records(log, "json", event("promotion"))
    assert (promotion["state"], promotion["candidate"]) == ("promoted", "blue")  # roles swapped
    assert all(_json(line) for line in lines_of(log))  # the newline did not split a line


async def test_reloads_accepted_and_refused_are_events(
    switchback: StartProxy, releases: Releases, tmp_path: Path
) -> None:
    log = tmp_path / "events.log"
    proxy = await switchback(log_config(log, "logfmt"))
    assert (await proxy.admin_call("POST", "/reload"))[0] == 200
    (ok,) = await records(log, "logfmt", event("reload"))
    assert ok["accepted"] == "true"
    assert ok["file"] == str(proxy.config_path)
    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["traffic"]["weights"] = {"blue": 70, "green": 40}
    proxy.config_path.write_text(yaml.safe_dump(cfg))
    assert (await proxy.admin_call("POST", "/reload"))[0] != 200
    reloads = await records(log, "logfmt", event("reload"), count=2)
    refused = reloads[1]
    assert refused["accepted"] == "false"
    assert refused["level"] == "error"
    assert "traffic.weights: {blue: 70, green: 40} sum to 110, not 100" in refused["error"]


async def test_a_reload_switches_the_format_and_the_file(
    switchback: StartProxy, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    proxy = await switchback(log_config(first, "json"))
    await get(proxy, "/before")
    await records(first, "json", access("/before"))
    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["logging"] = {"format": "logfmt", "file": str(second)}
    proxy.config_path.write_text(yaml.safe_dump(cfg))
    assert (await proxy.admin_call("POST", "/reload"))[0] == 200
    await get(proxy, "/after")
    (after,) = await records(second, "logfmt", access("/after"))
    assert after["status"] == "200"
    assert not any("/after" in line for line in lines_of(first))
    cfg["logging"] = {"format": "json", "file": str(second), "access": False}
    proxy.config_path.write_text(yaml.safe_dump(cfg))
    assert (await proxy.admin_call("POST", "/reload"))[0] == 200
    await records(second, "json", event("reload"))  # the format changed in place
    await get(proxy, "/unlogged")
    await get(proxy, "/users/1")
    samples = await proxy.metrics()
    assert sample(samples, "switchback_requests_total", release="blue", code="200") >= 4
    assert not any("/unlogged" in line for line in lines_of(second))


async def test_lines_the_access_step_gathered_are_written_by_a_reload_and_by_a_stop(
    switchback: StartProxy, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    proxy = await switchback(log_config(first, "json"))
    step = proxy.runtime.logs.access
    assert step is not None
    step.interval = 3600.0  # no timer hands the lines over during the test: the reload must
    await get(proxy, "/gathered")
    assert step.lines and not any("/gathered" in line for line in lines_of(first))
    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["logging"] = {"format": "json", "file": str(second)}
    proxy.config_path.write_text(yaml.safe_dump(cfg))
    assert (await proxy.admin_call("POST", "/reload"))[0] == 200
    await records(second, "json", access("/gathered"))  # to the sink the reload opened
    step = proxy.runtime.logs.access
    assert step is not None
    step.interval = 3600.0
    await get(proxy, "/last")
    assert step.lines
    await proxy.runtime.stop()
    assert [r["target"] for r in parse_all(second) if r.get("type") == "access"][-1] == "/last"


def parse_all(path: Path) -> list[dict[str, Any]]:
    return [parse("json", line) for line in lines_of(path)]


async def test_a_log_file_that_cannot_be_opened_is_refused_by_name(
    switchback: StartProxy, tmp_path: Path
) -> None:
    bad = tmp_path / "no-such-dir" / "x.log"
    with pytest.raises(ConfigError, match=r"logging\.file: '.*no-such-dir/x\.log' cannot be"):
        await switchback(log_config(bad, "json"))
    good = tmp_path / "good.log"
    proxy = await switchback(log_config(good, "json"), name="other.yaml")
    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["logging"]["file"] = str(bad)
    proxy.config_path.write_text(yaml.safe_dump(cfg))
    code, body = await proxy.admin_call("POST", "/reload")
    assert code != 200 and "logging.file" in str(body)
    await get(proxy, "/still")
    await records(good, "json", access("/still"))  # the old file is still written


def json_of(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes: ``{"user":{"role":"a"},"pad":"xx..."}``."""
    start = b'{"user":{"role":"a"},"pad":"'
    return start + b"x" * (size - len(start) - 2) + b'"}'


# Around the size up to which the head and the body leave as one bytes object (beyond it, one
# writev of the two): the client gets every byte, and bytes_out counts exactly what it got.
@pytest.mark.parametrize("size", [1_000, 16_384, 16_385, 60_000])
@pytest.mark.parametrize("inspected", [False, True])
async def test_bytes_out_is_exactly_what_the_client_received(
    switchback: StartProxy, scripted: Any, tmp_path: Path, size: int, inspected: bool
) -> None:
    body = json_of(size)

    async def script(n: int, head: bytes) -> bytes:
        return (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (
                len(body),
                body,
            )
        )

    release = await scripted(script)
    log = tmp_path / "access.log"
    config: dict[str, Any] = {**log_config(log, "json"), "releases": {"blue": {"url": release.url}}}
    if inspected:  # the response is held whole, inspected, then sent
        config["deprecations"] = [{"id": "r", "field": "user.role", "deprecated": "2026-06-01"}]
    proxy = await switchback(config)
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    received = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    head, _, got = received.partition(b"\r\n\r\n")
    assert got == body
    assert (b"\r\nDeprecation: " in head) is inspected
    (line,) = await records(log, "json", access("/big"))
    assert int(line["bytes_out"]) == len(received)
