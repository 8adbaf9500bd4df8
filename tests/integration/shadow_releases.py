"""Two releases that differ, for the shadow traffic tests: real aiohttp servers on loopback.

    path               blue (stable)                          green (candidate)
    /users/{id}        {"user": {id, name, legacy, role}}     legacy removed, role a list,
                                                              roles added
    /items             {"items": [{"id"}, ...]}               {"items": {"0": {"id"}}}
    /gone              200 {"ok": true}                       404 {"error": "not found"}
    /same              {"ok": true}                           the same
    /random            a value that varies per answer, on both releases
    /slow              answers at once                        waits until ``gate`` is set
    anything else      echo of method, target, headers and body (both)

Each release records what it received (``seen``), so a test sees which requests it was sent.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_request import BaseRequest


def _user(release: str, user_id: str) -> dict[str, Any]:
    user: dict[str, Any] = {"id": int(user_id), "name": f"user {user_id}"}
    if release == "blue":
        user["legacy"] = "x"
        user["role"] = "admin"
    else:
        user["role"] = ["admin"]
        user["roles"] = ["admin", "billing"]
    return {"user": user}


def _random() -> dict[str, Any]:
    return {"nonce": random.random(), "stable": "yes"}


@dataclass
class DiffRelease:
    name: str
    seen: list[dict[str, Any]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: int = 0  # requests held at the gate now
    port: int = 0
    runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [str(s["target"]) for s in self.seen]

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": [
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers
                ],
                "body": body,
            }
        )
        path = request.raw_path.partition("?")[0]
        blue = self.name == "blue"
        if path.startswith("/users/"):
            return _json(_user(self.name, path.rsplit("/", 1)[1]))
        if path == "/items":
            items = [{"id": i} for i in range(2)]
            return _json({"items": items if blue else {str(i): v for i, v in enumerate(items)}})
        if path == "/gone":
            return _json({"ok": True}) if blue else _json({"error": "not found"}, 404)
        if path == "/same":
            return _json({"ok": True})
        if path == "/random":
            return _json(_random())
        if path == "/slow" and not blue:
            self.waiting += 1
            try:
                await self.gate.wait()
            finally:
                self.waiting -= 1
            return _json({"slow": True})
        if path == "/slow":
            return _json({"slow": True})
        return _json(
            {
                "method": request.method,
                "target": request.raw_path,
                "headers": [[k, v] for k, v in self.seen[-1]["headers"]],
                "body": body.decode("latin-1"),
            }
        )

    async def start(self) -> None:
        server = web.Server(self.handle)
        self.runner = web.ServerRunner(server, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def close(self) -> None:
        self.gate.set()
        if self.runner is not None:
            await self.runner.cleanup()


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")
