"""The admin listener: health, status, metrics and the traffic controls, as JSON over HTTP.

Who may do what (``Authorization: Bearer <token>``, tokens compared in constant time):

    GET /healthz, /readyz, /openapi.json   always open (probes; the API's own description)
    GET /, /login, POST /login, /logout    the status page: the same read rule, with a login
                                           form and a session cookie (proxy.admin.page_routes)
    GET /status, /metrics, /deprecations,  open while admin.listen is loopback and no
        /shadow (the diff report),         admin.read_token is set; otherwise admin.token or
        /journal, /fleet,                  admin.read_token (these reads name clients)
        /status/history, /events
    every other method                     admin.token; the read token never allows a change

With no token configured, writes are accepted only from loopback peers (the config loader
already refuses a non-loopback admin listener without a token; this is the second lock).

One middleware does the auth, and ``error_answer`` turns every failure into
``{"error": "<message>", "code": "<code>"}``, with the status and code read off the exception
(``proxy.errors``):

    malformed JSON, wrong shapes or values      400 invalid_input (InvalidInput)
    a config file refused by POST /reload       400 invalid_config (ConfigError)
    missing or wrong token                      401 unauthorized (WWW-Authenticate: Bearer)
    write without a token from a remote peer,
    or with the read token                      403 forbidden
    unknown route / wrong method                404 not_found / 405 method_not_allowed
    an illegal rollout move                     409 illegal_move (RolloutError)
    the report cannot be made                   503 ledger_unavailable (LedgerError)
    the journal cannot be read or marked        503 journal_unavailable (JournalError)
    anything else                               500 internal_error (traceback to the log only)

Handlers check shapes and types only; whether a value makes sense (weights sum to 100, steps
ascend, a release exists) is the runtime's call, which says so with InvalidInput; whether the
move is legal now, with RolloutError.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
import prometheus_client
from aiohttp import web

from proxy.admin.inputs import (
    flag,
    no_unknown_keys,
    number,
    numbers,
    positive,
    read_object,
    show,
    since_time,
    whole,
)
from proxy.admin.openapi_doc import openapi_document
from proxy.admin.page_routes import PAGE_PATHS, StatusPage
from proxy.config.checks import admin_reads_need_token, is_loopback, is_set
from proxy.errors import AccessDenied, InvalidInput, SwitchbackError, Unauthorized
from proxy.schema import AdminConfig, Config

log = logging.getLogger(__name__)


class AdminRuntime(Protocol):
    """What the admin API needs from the running proxy. Return values are JSON-able dicts."""

    config: Config
    ready: bool
    registry: prometheus_client.CollectorRegistry

    def status(self) -> dict[str, Any]: ...

    def status_history(self) -> dict[str, Any]: ...  # window snapshots, oldest first

    def recent_events(self) -> dict[str, Any]: ...  # rollbacks, refused reloads, refusals
    async def fleet(self) -> dict[str, Any]: ...  # every replica of the fleet (proxy.fleet)

    def set_weights(self, weights: dict[str, float]) -> dict[str, Any]: ...  # InvalidInput

    def rollback(self, reason: str) -> dict[str, Any]: ...

    def promote(self) -> dict[str, Any]: ...  # RolloutError

    def start_rollout(self, overrides: dict[str, Any]) -> dict[str, Any]: ...  # InvalidInput

    def pause_rollout(self) -> dict[str, Any]: ...

    def resume_rollout(self) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]: ...  # ConfigError

    async def deprecation_report(self, days: int | None) -> dict[str, Any]: ...

    def shadow_report(self, limit: int | None) -> dict[str, Any]: ...
    async def journal_list(
        self, since: float | None, release: str | None, limit: int | None
    ) -> dict[str, Any]: ...  # JournalError

    async def journal_replay(
        self, to: str, since: float | None, dry_run: bool, again: bool, headers: list[str]
    ) -> dict[str, Any]: ...  # InvalidInput, JournalError


# AdminRuntime is a Protocol, so the key is parametrized rather than given the type.
RUNTIME = web.AppKey[AdminRuntime]("runtime")

_OPEN_METHODS = frozenset({"GET", "HEAD"})
# Open to every peer, whatever the config: the probes, and the API's description.
_PROBES = frozenset({"/healthz", "/readyz", "/openapi.json"})
DEFAULT_ROLLBACK_REASON = "manual rollback via the admin API"
MAX_DAYS = 36_500  # ?days= of the deprecation report: a century
MAX_LIMIT = 1_000_000  # ?limit= of /journal and /shadow


def make_admin_app(runtime: AdminRuntime) -> web.Application:
    app = web.Application(middlewares=[_errors_and_auth])
    app[RUNTIME] = runtime
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/status", _status)
    app.router.add_get("/status/history", _status_history)
    app.router.add_get("/events", _events)
    app.router.add_get("/openapi.json", _openapi)
    app.router.add_get("/fleet", _fleet)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/deprecations", _deprecations)
    app.router.add_get("/shadow", _shadow)
    app.router.add_put("/traffic", _put_traffic)
    app.router.add_post("/rollback", _rollback)
    app.router.add_post("/promote", _promote)
    app.router.add_post("/rollout", _start_rollout)
    app.router.add_post("/rollout/pause", _pause_rollout)
    app.router.add_post("/rollout/resume", _resume_rollout)
    app.router.add_post("/reload", _reload)
    app.router.add_get("/journal", _journal)
    app.router.add_post("/journal/replay", _journal_replay)
    StatusPage(runtime).add_routes(app)
    return app


# -- middleware --

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _errors_and_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        # Unknown routes and wrong methods answer 404/405 before auth: they change nothing.
        if request.match_info.http_exception is None and _route(request) not in PAGE_PATHS:
            admin = request.app[RUNTIME].config.admin
            if request.method not in _OPEN_METHODS:
                _authorize(request, admin)
            elif _route(request) not in _PROBES and admin_reads_need_token(admin):
                _authorize_read(request, admin)
        return await handler(request)
    except Exception as exc:
        return error_answer(request, exc)


def error_answer(request: web.Request, exc: Exception) -> web.Response:
    """The one place an exception becomes the admin API's JSON error."""
    if isinstance(exc, SwitchbackError):
        return _error_json(exc.status, exc.code, str(exc), exc.headers)
    if isinstance(exc, web.HTTPException):  # aiohttp's own: an unknown route, a wrong method
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        code = exc.reason.lower().replace(" ", "_")
        return _error_json(exc.status, code, _http_message(request, exc), headers)
    log.exception("admin API: %s %s failed", request.method, request.path, exc_info=exc)
    return _error_json(500, SwitchbackError.code, "internal error")


def _route(request: web.Request) -> str:
    """The matched route's path (``/healthz``), however the request spelled it."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _authorize(request: web.Request, admin: AdminConfig) -> None:
    token = admin.token
    if not token:
        # The peer is an IP address; a Unix socket or an unknown peer ("") is not loopback.
        if not is_loopback(request.remote or ""):
            raise AccessDenied("admin writes from a non-loopback peer need admin.token set")
        return
    supplied = _bearer(request)
    if _matches(supplied, token):
        return
    if is_set(admin.read_token) and _matches(supplied, admin.read_token):
        raise AccessDenied("the admin read token allows reads only; changes need admin.token")
    raise Unauthorized("invalid admin token")


def _authorize_read(request: web.Request, admin: AdminConfig) -> None:
    tokens = [token for token in (admin.token, admin.read_token) if is_set(token)]
    if not tokens:  # the loader refuses this config; never open by mistake
        raise AccessDenied("admin reads beyond loopback need admin.token or admin.read_token")
    supplied = _bearer(request)
    # Compare with every token, so that the time taken does not say which one was close.
    if not sum(_matches(supplied, token) for token in tokens):
        raise Unauthorized("invalid admin token")


def _bearer(request: web.Request) -> str:
    """The bearer token sent, stripped; 401 when there is none."""
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        raise Unauthorized("missing admin token")
    return supplied.strip()


def _matches(supplied: str, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(_bytes(supplied), _bytes(token))


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _http_message(request: web.Request, exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"method not allowed: {request.method} {request.path} (allowed: {allowed})"
    if isinstance(exc, web.HTTPNotFound):
        return f"not found: {request.method} {request.path}"
    return exc.reason.lower()


def json_response(data: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(data, option=orjson.OPT_APPEND_NEWLINE)
    return web.Response(body=body, status=status, content_type="application/json")


def _error_json(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    response = json_response({"error": message, "code": code}, status)
    response.headers.update(headers or {})
    return response


# -- reads --


async def _healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    ready = bool(request.app[RUNTIME].ready)
    return json_response({"ready": ready}, 200 if ready else 503)


async def _status(request: web.Request) -> web.Response:
    return json_response(request.app[RUNTIME].status())


async def _status_history(request: web.Request) -> web.Response:
    return json_response(request.app[RUNTIME].status_history())


async def _events(request: web.Request) -> web.Response:
    return json_response(request.app[RUNTIME].recent_events())


async def _openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document())


async def _fleet(request: web.Request) -> web.Response:
    return json_response(await request.app[RUNTIME].fleet())


async def _metrics(request: web.Request) -> web.Response:
    body = prometheus_client.generate_latest(request.app[RUNTIME].registry)
    # Set the header whole: aiohttp's content_type argument refuses a charset parameter.
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


async def _deprecations(request: web.Request) -> web.Response:
    raw = request.query.get("days")
    days = None if raw is None else positive("days", raw, MAX_DAYS)
    return json_response(await request.app[RUNTIME].deprecation_report(days))


async def _shadow(request: web.Request) -> web.Response:
    """The diff report of shadow traffic: the top ``limit`` differences (default 20)."""
    limit = positive("limit", request.query.get("limit", "20"), MAX_LIMIT)
    return json_response(request.app[RUNTIME].shadow_report(limit))


async def _journal(request: web.Request) -> web.Response:
    q = request.query
    no_unknown_keys(dict(q), {"since", "release", "limit"})
    since = since_time(q.get("since"))
    limit = positive("limit", q["limit"], MAX_LIMIT) if "limit" in q else None
    return json_response(await request.app[RUNTIME].journal_list(since, q.get("release"), limit))


# -- writes --


async def _put_traffic(request: web.Request) -> web.Response:
    body = await read_object(request, required=True)
    no_unknown_keys(body, {"weights"})
    raw = body.get("weights")
    if not isinstance(raw, dict) or not raw:
        raise InvalidInput(f'weights: expected an object like {{"green": 25}}, got {show(raw)}')
    weights = {name: number(f"weights.{name}", value) for name, value in raw.items()}
    return json_response(request.app[RUNTIME].set_weights(weights))


async def _rollback(request: web.Request) -> web.Response:
    body = await read_object(request, required=False)
    no_unknown_keys(body, {"reason"})
    reason = body.get("reason", DEFAULT_ROLLBACK_REASON)
    if not isinstance(reason, str):
        raise InvalidInput(f"reason: {show(reason)} is not a string")
    return json_response(request.app[RUNTIME].rollback(reason.strip() or DEFAULT_ROLLBACK_REASON))


async def _promote(request: web.Request) -> web.Response:
    return json_response(request.app[RUNTIME].promote())


async def _start_rollout(request: web.Request) -> web.Response:
    body = await read_object(request, required=False)
    no_unknown_keys(body, set(_OVERRIDES))
    overrides = {key: _OVERRIDES[key](key, value) for key, value in body.items()}
    return json_response(request.app[RUNTIME].start_rollout(overrides))


async def _pause_rollout(request: web.Request) -> web.Response:
    return json_response(request.app[RUNTIME].pause_rollout())


async def _resume_rollout(request: web.Request) -> web.Response:
    return json_response(request.app[RUNTIME].resume_rollout())


async def _reload(request: web.Request) -> web.Response:
    return json_response(await request.app[RUNTIME].reload())


async def _journal_replay(request: web.Request) -> web.Response:
    body = await read_object(request, required=True)
    no_unknown_keys(body, {"to", "since", "dry_run", "again", "headers"})
    to = body.get("to")
    if not isinstance(to, str) or not to:
        raise InvalidInput(f'to: expected a release name such as "blue", got {show(to)}')
    headers = body.get("headers", [])
    if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
        raise InvalidInput(f"headers: {show(headers)} is not a list of 'Name: value' strings")
    answer = await request.app[RUNTIME].journal_replay(
        to,
        since_time(body.get("since")),
        flag("dry_run", body.get("dry_run", False)),
        flag("again", body.get("again", False)),
        headers,
    )
    return json_response(answer)


# POST /rollout overrides: the RolloutConfig fields an operator may change per rollout.
_OVERRIDES: dict[str, Callable[[str, Any], Any]] = {
    "steps": numbers,
    "step_seconds": number,
    "min_requests": whole,
    "max_error_rate": number,
    "max_p99_ms": number,
    "auto_promote": flag,
}
