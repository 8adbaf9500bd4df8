"""Enforcement removes a sunset response field and changes nothing else: every other value
keeps its exact text (an integer past 64 bits, a number past a double's range, the spelling
of a number), and a body that is not JSON still passes through as it came."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import aiohttp
import pytest

from tests.integration.conftest import Proxy, StartProxy, sample

ROLE = {
    "id": "user-role",
    "field": "user.role",
    "on": "GET /users/{id}",
    "deprecated": "2020-01-01",
    "sunset": "2020-06-01",
    "enforce": "after_sunset",
}


def answer(body: bytes, extra: bytes = b"") -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


async def start(
    switchback: StartProxy, scripted: Any, body: bytes, *deps: dict[str, Any], extra: bytes = b""
) -> Proxy:
    release = await scripted(lambda n, head: asyncio.sleep(0, answer(body, extra)))
    releases = {"blue": {"url": release.url}, "green": {"url": release.url}}
    return await switchback({"releases": releases, "deprecations": list(deps or [ROLE])})


async def get(proxy: Proxy, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    headers = {"X-Client-Id": "web", **(headers or {})}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as s,
        s.get(proxy.url + "/users/1", headers=headers) as r,
    ):
        return r.status, await r.read()


async def removals(proxy: Proxy, element: str = "user-role") -> float:
    return sample(
        await proxy.metrics(),
        "switchback_deprecated_refused_total",
        element=element,
        client="web",
        reason="sunset",
    )


@pytest.mark.parametrize(
    ("body", "sent"),
    [
        (
            b'{"id":123456789012345678901234567890,"user":{"name":"Ada","role":"admin"}}',
            b'{"id":123456789012345678901234567890,"user":{"name":"Ada"}}',
        ),
        (
            b'{"score":1e400,"user":{"name":"Ada","role":"admin"}}',
            b'{"score":1e400,"user":{"name":"Ada"}}',
        ),
    ],
    ids=["integer-past-64-bits", "number-past-a-double"],
)
async def test_a_number_json_allows_keeps_its_digits_and_does_not_stop_the_removal(
    switchback: StartProxy, scripted: Any, body: bytes, sent: bytes
) -> None:
    """An integer past 64 bits kept its digits only as a float; ``1e400``, refused by the
    decoder, let the switched-off field through."""
    proxy = await start(switchback, scripted, body)
    status, out = await get(proxy)
    assert status == 200
    assert out == sent
    assert await removals(proxy) == 1


async def test_values_keep_their_spelling_beside_and_inside_the_removed_paths(
    switchback: StartProxy, scripted: Any
) -> None:
    body = (
        b'{"price": 1.10, "user": {"name": "Ad\\u0061", "big": -1E+400, "role": "admin"},'
        b' "items": [{"id": 18446744073709551616, "role": 1}, {"id": 0.0}, 7],'
        b' "tags": [ 1.0e2 , "x" ]}'
    )
    items = {**ROLE, "id": "item-role", "field": "items[].role"}
    proxy = await start(switchback, scripted, body, ROLE, items)
    status, out = await get(proxy)
    assert status == 200
    assert out == (
        b'{"price":1.10,"user":{"name":"Ad\\u0061","big":-1E+400},'
        b'"items":[{"id":18446744073709551616},{"id":0.0},7],"tags":[ 1.0e2 , "x" ]}'
    )
    assert await removals(proxy) == 1 and await removals(proxy, "item-role") == 1


async def test_a_gzip_body_is_re_encoded_with_its_numbers_intact(
    switchback: StartProxy, scripted: Any
) -> None:
    body = b'{"id":123456789012345678901234567890,"user":{"role":"admin","n":1e400}}'
    proxy = await start(
        switchback, scripted, gzip.compress(body), extra=b"Content-Encoding: gzip\r\n"
    )
    status, out = await get(proxy, {"Accept-Encoding": "gzip"})
    assert status == 200
    assert gzip.decompress(out) == b'{"id":123456789012345678901234567890,"user":{"n":1e400}}'


async def test_a_body_that_is_not_json_passes_through_as_it_came(
    switchback: StartProxy, scripted: Any
) -> None:
    for body in (
        b'{"user":{"role":"admin"},"x":NaN}',
        b'{"user":{"role":"admin"}} trailing',
        b'{"user":{"role":"admin","s":"\xff"}}',  # not UTF-8
        b'{"user":{"role":"admin"},"x":' + b"[" * 5000 + b"]" * 5000 + b"}",  # too deep
    ):
        proxy = await start(switchback, scripted, body)
        status, out = await get(proxy)
        assert (status, out) == (200, body)
        assert await removals(proxy) == 0
