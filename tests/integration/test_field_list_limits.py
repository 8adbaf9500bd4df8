"""Field lists at their edges: a request with no list reaches the app whatever its query holds,
and a list with more names than ``fieldselect.MAX_NAMES`` is a 400 before any type is made."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.integration.conftest import StartProxy, raw_exchange

LIMIT = 256  # proxy.core.fieldselect.MAX_NAMES, as the README states it
BODY = b'{"user":{"id":1,"role":"admin"},"n0":0,"other":1}'


def answer(body: bytes = BODY) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def config(url: str) -> dict[str, Any]:
    return {
        "releases": {"blue": {"url": url}, "green": {"url": url}},
        "fields": {"mode": "prune", "query_param": "fields"},
    }


def get(target: str, *fields: tuple[str, str]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: x", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize("target", ["/users/1?%ff=1", "/users/1?a=1&%ff%fe+x=%ff&b"])
async def test_a_request_without_a_list_reaches_the_app_whatever_its_other_parameters(
    switchback: StartProxy, scripted: Any, target: str
) -> None:
    release = await scripted(lambda n, head: asyncio.sleep(0, answer()))
    proxy = await switchback(config(release.url))
    status, headers, body = await raw_exchange(proxy.port, get(target))
    assert (status, body) == (200, BODY)
    assert [v for k, v in headers if k.lower() == "x-fields-pruned"] == []
    assert [h.split(b"\r\n")[0] for h in release.heads] == [f"GET {target} HTTP/1.1".encode()]


async def test_a_list_parameter_that_is_not_utf8_is_still_a_400_beside_other_such_keys(
    switchback: StartProxy, scripted: Any
) -> None:
    release = await scripted(lambda n, head: asyncio.sleep(0, answer()))
    proxy = await switchback(config(release.url))
    status, _, body = await raw_exchange(proxy.port, get("/users/1?%ff=1&fields=id%ff"))
    assert status == 400
    error = orjson.loads(body)
    assert (error["error"], error["position"], error["expected"]) == (
        "invalid_fields",
        2,
        "UTF-8 text",
    )
    assert release.heads == []


def _nested(count: int) -> str:
    return ",".join(f"a{i}(b{i}(c{i}))" for i in range(count))


FLAT = ",".join(f"n{i}" for i in range(LIMIT + 1))


@pytest.mark.parametrize(
    ("where", "fields", "at"),
    [
        # The probe's list: 7,500 names in 51,669 characters, within the head limit.
        ("header", ",".join(f"a0x{i}(b{i}(c{i}))" for i in range(2500)), "b85(c85)),"),
        ("header", FLAT, f"n{LIMIT}"),
        ("query", FLAT, f"n{LIMIT}"),
    ],
)
async def test_a_list_of_too_many_names_is_a_400_naming_the_limit_and_the_app_is_not_called(
    switchback: StartProxy, scripted: Any, where: str, fields: str, at: str
) -> None:
    release = await scripted(lambda n, head: asyncio.sleep(0, answer()))
    proxy = await switchback(config(release.url))
    if where == "header":
        request, name = get("/users/1", ("X-Fields", fields)), "X-Fields"
    else:
        request, name = get(f"/users/1?fields={fields}"), "query parameter fields"
    status, _, body = await raw_exchange(proxy.port, request)
    assert status == 400
    error = orjson.loads(body)
    expected = f"at most {LIMIT} field names"
    assert (error["error"], error["expected"]) == ("invalid_fields", expected)
    position = error["position"]
    assert fields[position:].startswith(at)  # where the name past the limit begins
    assert error["detail"].startswith(f"{name}: not a field list at position {position}: ")
    assert expected in error["detail"]
    assert release.heads == []


async def test_a_list_just_at_the_limit_is_pruned(switchback: StartProxy, scripted: Any) -> None:
    release = await scripted(lambda n, head: asyncio.sleep(0, answer()))
    proxy = await switchback(config(release.url))
    flat = ",".join(f"n{i}" for i in range(LIMIT - 2)) + ",user(id)"  # 256 names in all
    nested = "user(id)," + _nested((LIMIT - 2) // 3) + ",n0"  # 2 + 84 * 3 + 1 = 255, +1 below
    for fields, expected in [
        (flat, {"n0": 0, "user": {"id": 1}}),
        (nested + ",zz", {"user": {"id": 1}, "n0": 0}),
    ]:
        status, headers, body = await raw_exchange(
            proxy.port, get("/users/1", ("X-Fields", fields))
        )
        assert (status, orjson.loads(body)) == (200, expected)
        assert ("X-Fields-Pruned", "yes") in headers
    assert len(release.heads) == 2
