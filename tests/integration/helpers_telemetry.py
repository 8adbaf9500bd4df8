"""A release for the deprecation telemetry tests: every response shape inspection must handle.

The request target chooses the JSON payload; the ``X-Shape`` header chooses how it is sent:

    /users/nobody     {"user": {... no "role", "roles": [...]}}
    /users/{id}, /v0/users/{id}
                      {"user": {"id", "name", "role"}}
    /items            items[].role on some elements; ?v=plain: "role" only at the top;
                      ?v=mixed: items of several types, one with "role": null
    /grid             data[][].x; ?v=flat: data[].x (one array level short)
    /meta             meta.*.deprecated; ?v=flat: meta.deprecated (no key between);
                      ?v=mixed: values of several types, one object with "deprecated"
    /big              {"user": {"role"}, "pad": "..."} of ``X-Size`` bytes (default 4096)
    POST anything     the request body echoed, with the request's Content-Type
    anything else     text/plain "ok"

    X-Shape           json (default): application/json with Content-Length
                      gzip, deflate, br: compressed, with Content-Encoding;
                      raw-deflate: "deflate" without the zlib wrapper
                      zstd: Content-Encoding zstd (bytes no inspector here can decode)
                      bomb: a few hundred gzip bytes that inflate to over 200 kB
                      text: text/plain; vnd: application/vnd.example+json; problem:
                      application/problem+json; malformed: JSON cut short; chunked: no
                      Content-Length, the body in three chunks
                      own: the app's own Deprecation and Link headers (``OWN_*`` below)
                      empty: 200 without a body; redirect: 302 without a body
                      etag: a strong ETag ("v1"); missing: the JSON with status 404

``sent`` keeps, per request, the exact body bytes the release put on the wire (after any
compression, before chunk framing), so tests compare them with what the client received.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import brotli
import orjson
from aiohttp import web
from aiohttp.web_request import BaseRequest

USER = {"user": {"id": "1", "name": "Ada", "role": "admin"}}
LEAN_USER = {"user": {"id": "nobody", "name": "Bo", "roles": ["viewer"]}}
ITEMS = {"items": [{"id": 0, "role": "viewer"}, {"id": 1}, {"id": 2, "role": "editor"}]}
ITEMS_PLAIN = {"role": "owner", "items": [{"id": 0}, {"id": 1}]}
ITEMS_MIXED = {"items": [1, None, "x", {"id": 3, "role": None}]}  # a null value is still sent
GRID = {"data": [[{"x": 1}, {"y": 2}], [{"x": 3}]]}
GRID_FLAT = {"data": [{"x": 1}, {"x": 2}]}
META = {"meta": {"plan": {"deprecated": True}, "quota": {"limit": 5}}}
META_FLAT = {"meta": {"deprecated": True, "quota": 5}}
META_MIXED = {"meta": {"plan": "basic", "limits": [1], "flags": {"deprecated": False}}}

OWN_DEPRECATION = "@1700000000"  # what the app itself says; Switchback must keep it
OWN_LINK_URL = "https://app.example.com/own-notice"

PAYLOADS: dict[str, object] = {
    "/users/nobody": LEAN_USER,
    "/items": ITEMS,
    "/items?v=plain": ITEMS_PLAIN,
    "/items?v=mixed": ITEMS_MIXED,
    "/grid": GRID,
    "/grid?v=flat": GRID_FLAT,
    "/meta": META,
    "/meta?v=flat": META_FLAT,
    "/meta?v=mixed": META_MIXED,
}


def payload_for(target: str, size: int) -> bytes:
    if target in PAYLOADS:
        return orjson.dumps(PAYLOADS[target])
    path = target.partition("?")[0]
    if path in PAYLOADS:
        return orjson.dumps(PAYLOADS[path])
    if path.startswith(("/users/", "/v0/users/")):
        return orjson.dumps(USER)
    if path == "/big":
        head = orjson.dumps({"user": USER["user"], "pad": ""})
        return head[:-2] + b"x" * max(0, size - len(head)) + b'"}'
    raise KeyError(path)


def raw_deflate(data: bytes) -> bytes:
    """Deflate without the zlib wrapper, which some servers send as "deflate"."""
    stream = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return stream.compress(data) + stream.flush()


@dataclass
class TelemetryApp:
    """The release's server and what it sent and received."""

    port: int = 0
    sent: list[bytes] = field(default_factory=list)
    received: list[tuple[str, str, bytes]] = field(default_factory=list)  # method, target, body
    own_link: str = f'<{OWN_LINK_URL}>; rel="deprecation"'

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        body = await request.read()
        self.received.append((request.method, request.raw_path, body))
        if request.method == "POST":
            ctype = request.headers.get("Content-Type", "application/octet-stream")
            self.sent.append(body)
            return web.Response(body=body, headers={"Content-Type": ctype})
        try:
            data = payload_for(request.raw_path, int(request.headers.get("X-Size", "4096")))
        except KeyError:
            self.sent.append(b"ok")
            return web.Response(body=b"ok", headers={"Content-Type": "text/plain"})
        return await self.shaped(request, data, request.headers.get("X-Shape", "json"))

    async def shaped(self, request: BaseRequest, data: bytes, shape: str) -> web.StreamResponse:
        headers = {"Content-Type": "application/json"}
        if shape == "gzip":
            data = gzip.compress(data, mtime=0)
            headers["Content-Encoding"] = "gzip"
        elif shape == "deflate":  # zlib-wrapped, as RFC 9110 section 8.4.1.2 defines it
            data = zlib.compress(data, 6)
            headers["Content-Encoding"] = "deflate"
        elif shape == "raw-deflate":
            data = raw_deflate(data)
            headers["Content-Encoding"] = "deflate"
        elif shape == "br":
            data = brotli.compress(data)
            headers["Content-Encoding"] = "br"
        elif shape == "zstd":
            data = b"\x28\xb5\x2f\xfd" + data
            headers["Content-Encoding"] = "zstd"
        elif shape == "bomb":
            data = gzip.compress(data[:-2] + b" " * 200_000 + data[-2:], mtime=0)
            headers["Content-Encoding"] = "gzip"
        elif shape == "text":
            headers["Content-Type"] = "text/plain; charset=utf-8"
        elif shape == "vnd":
            headers["Content-Type"] = "application/vnd.example+json; charset=utf-8"
        elif shape == "problem":
            headers["Content-Type"] = "application/problem+json"
        elif shape == "malformed":
            data = data[:-3]
        elif shape in ("empty", "redirect"):  # no body, no Content-Type
            self.sent.append(b"")
            status, extra = (302, {"Location": "/users/2"}) if shape == "redirect" else (200, {})
            return web.Response(status=status, headers=extra)
        self.sent.append(data)
        if shape == "etag":
            headers["ETag"] = '"v1"'
        if shape == "missing":
            return web.Response(status=404, body=data, headers=headers)
        if shape == "chunked":
            resp = web.StreamResponse(headers=headers)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            third = len(data) // 3
            for piece in (data[:third], data[third : 2 * third], data[2 * third :]):
                await resp.write(piece)
            await resp.write_eof()
            return resp
        response = web.Response(body=data, headers=headers)
        if shape == "own":
            response.headers.add("Deprecation", OWN_DEPRECATION)
            response.headers.add("Link", self.own_link)
        return response


@asynccontextmanager
async def running_app() -> AsyncIterator[TelemetryApp]:
    app = TelemetryApp()
    runner = web.ServerRunner(web.Server(app.handle), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app.port = runner.addresses[0][1]
    try:
        yield app
    finally:
        await runner.cleanup()


# -- talking to the proxy --


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # as received, in order
    body: bytes  # as received: still compressed when the release compressed it

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


async def fetch(
    base_url: str,
    path: str,
    *,
    client: str | None = None,
    shape: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """One request through the proxy; the body comes back as sent, never decompressed."""
    sent = dict(headers or {})
    if client is not None:
        sent["X-Client-Id"] = client
    if shape is not None:
        sent["X-Shape"] = shape
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.request(
            method, base_url + path, headers=sent, data=body, allow_redirects=False
        ) as resp,
    ):
        raw = await resp.read()
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in resp.raw_headers]
        return Reply(resp.status, pairs, raw)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

DEPRECATED = "switchback_deprecated_total"
LAST_SEEN = "switchback_deprecated_last_seen_timestamp_seconds"
SKIPPED = "switchback_inspection_skipped_total"


def counts(samples: Samples) -> dict[tuple[str, str, str], float]:
    """``switchback_deprecated_total`` as {(element, kind, client): value}."""
    out = {}
    for (name, labels), value in samples.items():
        if name == DEPRECATED:
            d = dict(labels)
            out[d["element"], d["kind"], d["client"]] = value
    return out


def last_seen(samples: Samples) -> dict[tuple[str, str], float]:
    """``switchback_deprecated_last_seen_timestamp_seconds`` as {(element, client): value}."""
    out = {}
    for (name, labels), value in samples.items():
        if name == LAST_SEEN:
            d = dict(labels)
            out[d["element"], d["client"]] = value
    return out


def skips(samples: Samples) -> dict[str, float]:
    """``switchback_inspection_skipped_total`` as {reason: value}, reasons counted at least once
    (every reason's series exists from the start, at zero)."""
    return {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == SKIPPED and v > 0
    }
