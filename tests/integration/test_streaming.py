"""Large bodies stream through Switchback (a child process, as deployed) with flat memory: a
1 GiB upload and a 1 GiB download arrive whole (length and SHA-256 checked on the far side),
and the proxy's peak resident memory does not grow with the body."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import socket
import time
from typing import Any

import orjson
import pytest

from tests.integration.conftest import ProxyProcess, Releases
from tests.integration.releases import PATTERN

GIB = 1 << 30
RSS_GROWTH_LIMIT = 64 << 20
BLOCK = PATTERN * 16  # 1 MiB of the releases' deterministic bytes

pytestmark = pytest.mark.slow


def upload(port: int, size: int) -> tuple[dict[str, Any], float]:
    """POST ``size`` pattern bytes over a blocking socket; (the release's answer, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % size
        )
        view = memoryview(BLOCK)
        sent = 0
        while sent < size:
            piece = view[: min(len(BLOCK), size - sent)]
            sock.sendall(piece)
            sent += len(piece)
        reader = sock.makefile("rb")
        status = reader.readline()
        assert status.startswith(b"HTTP/1.1 200 "), status
        length = 0
        while (line := reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = orjson.loads(reader.read(length))
    return body, time.monotonic() - started


def download(port: int, size: int) -> tuple[int, str, float]:
    """GET /stream/``size`` (chunked); (bytes received, their SHA-256, seconds)."""
    digest = hashlib.sha256()
    received = 0
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"GET /stream/%d HTTP/1.1\r\nHost: h\r\n\r\n" % size)
        reader = sock.makefile("rb", buffering=1 << 20)
        status = reader.readline()
        assert status.startswith(b"HTTP/1.1 200 "), status
        headers = {}
        while (line := reader.readline()) != b"\r\n":
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        assert headers[b"transfer-encoding"] == b"chunked"
        while True:
            chunk_size = int(reader.readline().split(b";")[0], 16)
            if chunk_size == 0:
                assert reader.readline() == b"\r\n"
                break
            data = reader.read(chunk_size)
            assert len(data) == chunk_size
            digest.update(data)
            received += chunk_size
            assert reader.read(2) == b"\r\n"
    return received, digest.hexdigest(), time.monotonic() - started


@functools.cache
def pattern_sha256(size: int) -> str:
    """SHA-256 of the first ``size`` bytes the releases' pattern repeats (both ways)."""
    digest = hashlib.sha256()
    view = memoryview(PATTERN)
    done = 0
    while done < size:
        piece = view[: min(len(PATTERN), size - done)]
        digest.update(piece)
        done += len(piece)
    return digest.hexdigest()


async def warmed_up(proxy: ProxyProcess) -> int:
    """The proxy's peak RSS after a few small transfers of each kind (imports, pools, caches)."""
    for _ in range(3):
        await asyncio.to_thread(upload, proxy.port, 4 << 20)
        await asyncio.to_thread(download, proxy.port, 4 << 20)
    return proxy.peak_rss()


async def test_one_gib_upload_streams_through_with_flat_memory(
    switchback_process: Any, releases: Releases
) -> None:
    proxy: ProxyProcess = await switchback_process({"upstream": {"response_timeout": 60}})
    before = await warmed_up(proxy)
    expected = asyncio.create_task(asyncio.to_thread(pattern_sha256, GIB))
    body, seconds = await asyncio.to_thread(upload, proxy.port, GIB)
    assert body["release"] == "blue"
    assert body["len"] == GIB
    assert body["sha256"] == await expected
    growth = proxy.peak_rss() - before
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth >> 20} MiB ({seconds:.1f} s)"


async def test_one_gib_download_streams_through_with_flat_memory(
    switchback_process: Any, releases: Releases
) -> None:
    proxy: ProxyProcess = await switchback_process()
    before = await warmed_up(proxy)
    expected = asyncio.create_task(asyncio.to_thread(pattern_sha256, GIB))
    received, sha, seconds = await asyncio.to_thread(download, proxy.port, GIB)
    assert received == GIB
    assert sha == await expected
    growth = proxy.peak_rss() - before
    assert growth < RSS_GROWTH_LIMIT, f"peak RSS grew by {growth >> 20} MiB ({seconds:.1f} s)"


async def test_large_bodies_read_side_by_side_arrive_whole(
    switchback_process: Any, releases: Releases
) -> None:
    """Responses from several release connections at once, each over many reads, all arrive
    byte for byte: the release connections share the buffer the loop reads into, and no read
    may leave its bytes in another's body."""
    proxy: ProxyProcess = await switchback_process()
    sizes = [(3 << 20) + 7919 * k for k in range(8)]  # reads end at different offsets
    results = await asyncio.gather(
        *(asyncio.to_thread(download, proxy.port, size) for size in sizes)
    )
    for size, (received, sha, _) in zip(sizes, results, strict=True):
        assert received == size
        assert sha == pattern_sha256(size), f"the {size}-byte body was altered"
