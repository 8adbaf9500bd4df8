"""Limits: what one client may make Switchback hold, and how much load it takes on.

Each limit is answered with a JSON error, without calling the app, and by closing the
connection (after reading what the client still sends, so that it reads the answer); each is
counted in ``switchback_rejected_total{reason}``, and the proxy goes on serving others.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from tests.integration.conftest import (
    Proxy,
    ProxyProcess,
    Releases,
    StartProxy,
    header_values,
    json_refusal,
    read_response,
    sample,
)
from tests.integration.helpers_rollout import poll, wait_until
from tests.integration.releases import RecordingRelease

REJECTED = "switchback_rejected_total"
TOO_LARGE = "request_header_fields_too_large"


async def refused(
    proxy: Proxy | ProxyProcess, data: bytes, trickle: int = 0
) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    """Send ``data`` (in pieces of ``trickle`` bytes if given) and read the JSON error."""
    step = trickle or len(data)
    parts = [data[i : i + step] for i in range(0, len(data), step)]
    return await json_refusal(proxy.port, *parts)


async def serves(proxy: Proxy | ProxyProcess) -> None:
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/users/7") as r:
        assert r.status == 200
        assert (await r.json())["user"]["id"] == "7"


def head_with(*lines: bytes, target: bytes = b"/x") -> bytes:
    fields = b"".join(line + b"\r\n" for line in lines)
    return b"GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (target, fields)


@pytest.mark.parametrize(
    ("request_bytes", "status", "error", "reason"),
    [
        (head_with(b"X-Big: " + b"a" * 70_000), 431, TOO_LARGE, "head_size"),
        (head_with(*[b"X-%d: v" % i for i in range(100)]), 431, TOO_LARGE, "header_count"),
        (head_with(target=b"/" + b"a" * 9000), 414, "uri_too_long", "target_length"),
    ],
    ids=["head-size", "header-count", "target-length"],
)  # fmt: skip
async def test_over_long_request_heads_are_refused(
    switchback: StartProxy,
    releases: Releases,
    request_bytes: bytes,
    status: int,
    error: str,
    reason: str,
) -> None:
    proxy = await switchback()
    got, _, payload = await refused(proxy, request_bytes)
    assert (got, payload["error"]) == (status, error)
    assert releases.blue.seen == []
    assert sample(await proxy.metrics(), REJECTED, reason=reason) == 1
    await serves(proxy)


async def test_heads_within_the_limits_go_through(switchback: StartProxy) -> None:
    """Just under each default limit: 99 fields beside Host, a long target, a 52 KB field
    (to a release that takes heads that large: aiohttp's own limit is 8 KB a line)."""
    release = RecordingRelease()
    await release.start()
    try:
        proxy = await switchback({"releases": {"blue": {"url": release.url}}})
        big = b"X-Big: " + b"a" * 52_000  # with the target, some 61 KB of head
        target = b"/" + b"a" * 8000
        request = head_with(*[b"X-%d: v" % i for i in range(98)], big, target=target)
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(request)
            status, _, body = await asyncio.wait_for(read_response(reader), 5)
        finally:
            writer.close()
    finally:
        await release.close()
    assert (status, body) == (200, target)
    (received,) = release.received
    assert (b"X-Big", big[7:]) in received.headers


@pytest.mark.parametrize("field", [70_000, 52_000], ids=["over", "within"])
async def test_a_pipelined_head_is_measured_against_the_limit(
    switchback: StartProxy, field: int
) -> None:
    """A request and, in the same write, a second one whose head is over (or within) the
    64 KB default: the second head begins in the read that ends the first request, so what
    was read while it came does not bound it; it is measured. Over: the first is answered,
    the second gets the 431 and never reaches the release. Within: both go through."""
    release = RecordingRelease()
    await release.start()
    try:
        proxy = await switchback({"releases": {"blue": {"url": release.url}}})
        big = b"X-Big: " + b"a" * field
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        try:
            writer.write(head_with(target=b"/first") + head_with(big, target=b"/second"))
            first = await asyncio.wait_for(read_response(reader), 5)
            second = await asyncio.wait_for(read_response(reader), 5)
        finally:
            writer.close()
        samples = await proxy.metrics()
    finally:
        await release.close()
    assert (first[0], first[2]) == (200, b"/first")
    if field > 64 * 1024:
        status, headers, body = second
        assert (status, orjson.loads(body)["error"]) == (431, TOO_LARGE)
        assert header_values(headers, "Connection") == ["close"]
        assert [r.target for r in release.received] == [b"/first"]
        assert sample(samples, REJECTED, reason="head_size") == 1
    else:
        assert (second[0], second[2]) == (200, b"/second")
        assert (b"X-Big", big[7:]) in release.received[1].headers


async def test_a_head_streamed_for_ever_is_cut_with_bounded_memory(
    switchback_process: Any, releases: Releases
) -> None:
    """One client streaming a 64 MB header line (a head that never completes): Switchback
    answers 431 once the head passes the limit, and its memory barely moves."""
    proxy = await switchback_process()
    await serves(proxy)
    before = proxy.peak_rss()
    line = b"GET /x HTTP/1.1\r\nHost: h\r\nX-Endless: " + b"a" * (64 * 1024 * 1024)
    status, _, payload = await refused(proxy, line, trickle=256 * 1024)
    assert (status, payload["error"]) == (431, "request_header_fields_too_large")
    assert proxy.peak_rss() - before < 16 * 1024 * 1024
    await serves(proxy)


async def test_a_request_body_over_the_limit_is_refused(
    switchback: StartProxy, releases: Releases
) -> None:
    """Announced (Content-Length): refused before any release is chosen. Chunked: refused
    once it passes the limit; the release, which had the head and the first chunk, is cut
    off and never takes the truncated body for a whole request."""
    proxy = await switchback({"limits": {"max_body_bytes": 1000}})
    announced = b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" + b"a" * 5000
    status, _, payload = await refused(proxy, announced)
    assert (status, payload["error"]) == (413, "content_too_large")

    chunked = b"POST /orders HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"".join(b"200\r\n" + b"b" * 512 + b"\r\n" for _ in range(8)) + b"0\r\n\r\n"
    status, _, payload = await refused(proxy, chunked, trickle=600)
    assert (status, payload["error"]) == (413, "content_too_large")
    assert sample(await proxy.metrics(), REJECTED, reason="body_size") == 2
    small = b"POST /orders HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        writer.write(small)
        status, _, body = await asyncio.wait_for(read_response(reader), 5)
    finally:
        writer.close()
    assert (status, orjson.loads(body)["body_len"]) == (200, 10)
    assert [seen["body"] for seen in releases.blue.seen] == [b"0123456789"]


# -- overload ------------------------------------------------------------------------------


async def test_connections_beyond_the_cap_are_answered_503(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"limits": {"max_connections": 2, "retry_after": 3}})
    held = [await asyncio.open_connection("127.0.0.1", proxy.port) for _ in range(2)]
    listener = proxy.runtime.listener
    await wait_until(lambda: len(listener.connections) == 2, 5, "two connections open")
    try:
        status, headers, payload = await refused(proxy, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        assert (status, payload["error"]) == (503, "overloaded")
        assert header_values(headers, "Retry-After") == ["3"]
        assert releases.blue.seen == []
        assert sample(await proxy.metrics(), REJECTED, reason="max_connections") == 1
    finally:
        for _, writer in held:
            writer.close()
    await wait_until(lambda: not listener.connections, 5, "the connections closed")
    await serves(proxy)


async def test_a_release_at_its_in_flight_limit_is_answered_503(
    switchback: StartProxy, releases: Releases
) -> None:
    """A circuit breaker, as Envoy's: with ``max_in_flight`` requests on blue, the next one
    is answered at once with a 503 naming blue, and blue never sees it."""
    proxy = await switchback({"limits": {"max_in_flight": 2}})
    async with aiohttp.ClientSession() as session:
        slow = [asyncio.create_task(session.get(proxy.url + "/slow/1")) for _ in range(2)]
        pool = proxy.runtime.pools["blue"]
        await wait_until(lambda: pool.in_flight == 2, 5, "two requests in flight on blue")
        status, headers, payload = await refused(proxy, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        for task in slow:
            (await task).release()
    assert (status, payload["error"], payload["release"]) == (503, "release_overloaded", "blue")
    assert header_values(headers, "Retry-After") == ["1"]
    assert [seen["target"] for seen in releases.blue.seen] == ["/slow/1", "/slow/1"]
    samples = await proxy.metrics()
    assert sample(samples, REJECTED, reason="release_in_flight") == 1
    assert sample(samples, "switchback_requests_total", release="blue", code="503") == 1
    await serves(proxy)


@contextmanager
def busy_loop(loop: asyncio.AbstractEventLoop, block: float, every: float) -> Iterator[None]:
    """Keep the event loop busy: a callback that blocks it for ``block`` s every ``every`` s
    (what a CPU-bound burst does to a proxy's loop)."""
    stop = False

    def hog() -> None:
        if stop:
            return
        time.sleep(block)
        loop.call_later(every, hog)

    loop.call_soon(hog)
    try:
        yield
    finally:
        stop = True


async def test_a_loop_that_falls_behind_sheds_new_requests(
    switchback: StartProxy, releases: Releases
) -> None:
    """While the event loop runs late (here: blocked 150 ms out of every 200 ms), new
    requests get a 503 at once instead of queueing; when it catches up, service resumes."""
    proxy = await switchback({"limits": {"max_loop_lag": 0.05}})
    await serves(proxy)
    loop = asyncio.get_running_loop()
    with busy_loop(loop, block=0.15, every=0.05):
        await poll(
            proxy.metrics,
            lambda s: sample(s, "switchback_shedding") == 1,
            10,
            "shedding",
        )
        status, headers, payload = await refused(proxy, b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (status, payload["error"]) == (503, "overloaded")
    assert header_values(headers, "Retry-After") == ["1"]
    await poll(proxy.metrics, lambda s: sample(s, "switchback_shedding") == 0, 10, "recovered")
    samples = await proxy.metrics()
    assert sample(samples, REJECTED, reason="loop_lag") >= 1
    await serves(proxy)
