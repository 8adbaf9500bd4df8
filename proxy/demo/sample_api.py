"""Two small releases of a users API, for the demo, the integration tests and trying things out.

Blue is the release in production; green is the next one. They differ the way real releases of
a JSON API do, so Switchback's deprecation telemetry has something to find:

    endpoint                  blue                                 green
    GET  /users/{id}          {"user": {id, name, role}}           adds "roles": [role]
    GET  /users               {"items": [{id, name, role}]}        adds "roles" to each item;
                              sort_by=id|name|role                 honours the new order=asc|desc
    GET  /v0/users/{id}       {id, name, role} (legacy, flat)      the same
    POST /users               201 {"user": ...}; the body may carry options.legacy (accepted)
    GET  /healthz             {"status": "ok", "release": ...}

Every response carries ``X-Release: blue|green`` so a user can see who answered.

For the rollout demo a release can be told to fail: ``--fail-rate 0.5`` (or, at run time,
``POST /_chaos {"fail_rate": 0.5}``) answers that share of API requests with a 500. Failures are
spread evenly (every second request at 0.5), not drawn at random, so a demo behaves the same
every time. ``/healthz`` and ``/_chaos`` never fail.

    python -m proxy.demo.sample_api --release blue --port 9001
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

RELEASES = ("blue", "green")
DEFAULT_PORTS = {"blue": 9001, "green": 9002}
SEED_USERS: tuple[dict[str, Any], ...] = (
    {"id": 1, "name": "Ada Lovelace", "role": "admin"},
    {"id": 2, "name": "Grace Hopper", "role": "editor"},
    {"id": 3, "name": "Alan Turing", "role": "viewer"},
)
SORT_KEYS = ("id", "name", "role")
ORDERS = ("asc", "desc")


class ReleaseState:
    """One release's data and chaos switch. Lives as long as its application."""

    def __init__(self, release: str, fail_rate: float) -> None:
        self.release = release
        self.users: dict[int, dict[str, Any]] = {u["id"]: dict(u) for u in SEED_USERS}
        self.next_id = max(self.users) + 1
        self.fail_rate = fail_rate
        self.served = 0  # API requests seen, for spreading failures evenly

    def should_fail(self) -> bool:
        """True for ``fail_rate`` of the calls, evenly spaced (0.25: the 4th, 8th, ...)."""
        before = math.floor(self.served * self.fail_rate)
        self.served += 1
        return math.floor(self.served * self.fail_rate) > before

    def render(self, user: dict[str, Any]) -> dict[str, Any]:
        """A user as this release shows it: green adds the new ``roles`` list."""
        shown = {"id": user["id"], "name": user["name"], "role": user["role"]}
        if self.release == "green":
            shown["roles"] = [user["role"]]
        return shown


STATE = web.AppKey("state", ReleaseState)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_NEVER_FAIL = frozenset({"/healthz", "/_chaos"})


def make_release_app(release: str, *, fail_rate: float = 0.0) -> web.Application:
    """The ``release`` ("blue" or "green") of the sample users API as an aiohttp application."""
    if release not in RELEASES:
        raise ValueError(f"release: {release!r} is not one of {', '.join(RELEASES)}")
    _check_rate(fail_rate)
    app = web.Application(middlewares=[_chaos_middleware])
    app[STATE] = ReleaseState(release, fail_rate)
    app.on_response_prepare.append(_stamp_release)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/users", _list_users)
    app.router.add_post("/users", _create_user)
    app.router.add_get("/users/{id}", _get_user)
    app.router.add_get("/v0/users/{id}", _get_user_v0)
    app.router.add_post("/_chaos", _set_chaos)
    return app


def _check_rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.0 <= rate <= 1.0:
        raise ValueError(f"fail_rate: {rate!r} is not a number between 0 and 1")
    return float(rate)


async def _stamp_release(request: web.Request, response: web.StreamResponse) -> None:
    # A signal rather than a middleware, so router 404/405 answers carry the header too.
    response.headers["X-Release"] = request.app[STATE].release


@web.middleware
async def _chaos_middleware(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[STATE]
    if request.path not in _NEVER_FAIL and state.fail_rate > 0 and state.should_fail():
        return _error(500, f"{state.release}: injected failure (fail_rate {state.fail_rate:g})")
    return await handler(request)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _user_or_404(request: web.Request) -> dict[str, Any]:
    raw = request.match_info["id"]
    user = request.app[STATE].users.get(int(raw)) if raw.isascii() and raw.isdigit() else None
    if user is None:
        raise web.HTTPNotFound(
            text=json.dumps({"error": f"no user {raw}"}), content_type="application/json"
        )
    return user


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "release": request.app[STATE].release})


async def _get_user(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"user": state.render(_user_or_404(request))})


async def _get_user_v0(request: web.Request) -> web.Response:
    """The legacy endpoint: the flat v0 shape, identical in both releases."""
    user = _user_or_404(request)
    return web.json_response({"id": user["id"], "name": user["name"], "role": user["role"]})


async def _list_users(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sort_by = request.query.get("sort_by", "id")
    if sort_by not in SORT_KEYS:
        return _error(400, f"sort_by: {sort_by!r} is not one of {', '.join(SORT_KEYS)}")
    descending = False
    if state.release == "green":  # `order` is new in green; blue ignores it like any unknown
        order = request.query.get("order", "asc")
        if order not in ORDERS:
            return _error(400, f"order: {order!r} is not one of {', '.join(ORDERS)}")
        descending = order == "desc"
    users = sorted(state.users.values(), key=lambda u: u[sort_by], reverse=descending)
    return web.json_response({"items": [state.render(u) for u in users]})


async def _create_user(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "request body: invalid JSON")
    if not isinstance(body, dict):
        return _error(400, "request body: expected a JSON object")
    name, role = body.get("name"), body.get("role", "viewer")
    if not isinstance(name, str) or not name.strip():
        return _error(400, "name: expected a non-empty string")
    if not isinstance(role, str) or not role.strip():
        return _error(400, "role: expected a non-empty string")
    options = body.get("options", {})
    if not isinstance(options, dict):
        return _error(400, "options: expected an object")
    # options.legacy is the deprecated flag: still accepted, it changes nothing any more.
    user: dict[str, Any] = {"id": state.next_id, "name": name.strip(), "role": role.strip()}
    state.users[user["id"]] = user
    state.next_id += 1
    return web.json_response(
        {"user": state.render(user)}, status=201, headers={"Location": f"/users/{user['id']}"}
    )


async def _set_chaos(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "request body: invalid JSON")
    try:
        rate = _check_rate(body.get("fail_rate") if isinstance(body, dict) else None)
    except ValueError as exc:
        return _error(400, str(exc))
    state.fail_rate, state.served = rate, 0
    return web.json_response({"release": state.release, "fail_rate": rate})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m proxy.demo.sample_api",
        description="Run one release of the sample users API.",
    )
    parser.add_argument("--release", choices=RELEASES, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="default: 9001 for blue, 9002 for green")
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="answer this share (0-1) of API requests with a 500 (default 0)",
    )
    args = parser.parse_args(argv)
    try:
        app = make_release_app(args.release, fail_rate=args.fail_rate)
    except ValueError as exc:
        parser.error(str(exc))
    port = args.port if args.port is not None else DEFAULT_PORTS[args.release]
    web.run_app(
        app,
        host=args.host,
        port=port,
        access_log=None,
        print=lambda _: print(f"sample API {args.release} on http://{args.host}:{port}"),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
