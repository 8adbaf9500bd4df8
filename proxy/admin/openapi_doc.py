"""The admin API described: an OpenAPI 3.1 document of every route ``proxy.admin.api`` serves,
as ``GET /openapi.json`` returns it.

Written by hand, next to the handlers it describes; ``tests/integration/test_admin_openapi.py``
runs schemathesis against a live admin listener with it, so that a route, a parameter or an
answer that changes without the document (or the other way round) fails the suite. Answers
name the keys they always carry; most allow more, so that adding a key is not a break.
"""

from __future__ import annotations

import copy
from typing import Any

from proxy.core.history import EVENT_KINDS
from proxy.core.rollout import STATES

_NUM = {"type": "number"}
_INT = {"type": "integer"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    req = list(props) if required is None else required
    return {"type": "object", "properties": props, "required": req}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    why = {
        400: "invalid input (malformed JSON, a wrong shape or value) or a refused config",
        401: "a token is needed, or the one sent is wrong",
        403: "a change with the read token, or without a token from beyond loopback",
        409: "a move the rollout's state forbids now",
        503: "the ledger or the journal cannot be read now",
    }
    return {str(s): _json(_ref("Error"), why[s]) for s in statuses}


_ROLLOUT = _obj(
    {
        "state": {"type": "string", "enum": list(STATES)},
        "step": _INT,
        "steps": {"type": "array", "items": _NUM},
        "candidate_weight": _NUM,
        "step_seconds": _NUM,
        "reason": _nullable(_STR),
    }
)
_SUMMARY = _obj(
    {
        "stable": _STR,
        "candidate": _STR,
        "weights": {"type": "object", "additionalProperties": _NUM},
        "source": _STR,
        "rollout": _ROLLOUT,
        "out_of_service": _nullable(_STR),
        "persisted": _BOOL,
        "persist_error": _nullable(_STR),
        "state_file": _STR,
    }
)
_RELEASE_STATS = _obj(
    {
        "url": _STR,
        "weight": _NUM,
        "in_flight": _INT,
        "websockets": _INT,
        "requests": _INT,
        "rate_per_s": _NUM,
        "error_rate": _NUM,
        "p99_ms": _nullable(_NUM),
    }
)
_STATUS = {
    "allOf": [
        _ref("Summary"),
        _obj(
            {
                "releases": {"type": "object", "additionalProperties": _RELEASE_STATS},
                "pins": {"type": "object", "additionalProperties": _STR},
                "window_seconds": _NUM,
                "client_id_header": _nullable(_STR),
                "uptime_seconds": _NUM,
                "config_file": _STR,
                "ledger": _nullable({"type": "object"}),
                "enforcement": {"type": "array", "items": {"type": "object"}},
                "journal": {"type": "object"},
            }
        ),
    ]
}
_HISTORY = _obj(
    {
        "every_seconds": _NUM,
        "size": _INT,
        "samples": {
            "type": "array",
            "items": _obj(
                {
                    "at": _NUM,
                    "stable": _STR,
                    "candidate": _STR,
                    "state": _STR,
                    "releases": {"type": "object", "additionalProperties": _RELEASE_STATS},
                }
            ),
        },
    }
)
_EVENTS = _obj(
    {
        "events": {
            "type": "array",
            "items": _obj(
                {
                    "kind": {"type": "string", "enum": list(EVENT_KINDS)},
                    "detail": _STR,
                    "at": _NUM,
                    "last_at": _NUM,
                    "count": {"type": "integer", "minimum": 1},
                }
            ),
        }
    }
)
_CLIENT_USE = _obj(
    {
        "client": _STR,
        "count": _INT,
        "kinds": {"type": "array", "items": _STR},
        "depends": _BOOL,
        "last_seen": _STR,
        "last_seen_unix": _NUM,
    }
)
_REPORT = _obj(
    {
        "generated_at": _STR,
        "days": _INT,
        "elements": {
            "type": "array",
            "items": _obj(
                {
                    "id": _STR,
                    "kind": _STR,
                    "element": _STR,
                    "sunset_at": _nullable(_STR),
                    "safe": _BOOL,
                    "verdict": _STR,
                    "clients": {"type": "array", "items": _CLIENT_USE},
                }
            ),
        },
    },
    ["days", "elements"],
)
_POSITIVE = {"type": "integer", "minimum": 1}
_SINCE = {"anyOf": [_NUM, _STR], "description": "unix seconds, or an ISO 8601 time (UTC)"}
_READ: list[dict[str, Any]] = [
    {"bearer": []},
    {},
]  # open on a loopback listener without admin.read_token
_WRITE: list[dict[str, Any]] = [
    {"bearer": []},
    {},
]  # admin.token; with none configured, loopback peers only
_HTML = {"text/html": {"schema": _STR}}
_SEE_OTHER = {"description": "to the page or the login form", "headers": {}}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    security: list[dict[str, Any]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    body_required: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": body}},
        }
    return op


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _read(summary: str, schema: dict[str, Any], *extra: int, **kw: Any) -> dict[str, Any]:
    answers = {"200": _json(schema, summary), **_errors(401, *extra)}
    return {"get": _op(summary, answers, security=_READ, **kw)}


def _change(summary: str, *extra: int, answer: str = "Summary", **kw: Any) -> dict[str, Any]:
    answers = {"200": _json(_ref(answer), "the state in force"), **_errors(401, 403, *extra)}
    return {"post": _op(summary, answers, security=_WRITE, **kw)}


_OVERRIDES = {
    "type": "object",
    "properties": {
        "steps": {"type": "array", "items": _NUM, "minItems": 1},
        "step_seconds": _NUM,
        "min_requests": _INT,
        "max_error_rate": _NUM,
        "max_p99_ms": _NUM,
        "auto_promote": _BOOL,
    },
    "additionalProperties": False,
}
_REPLAY = {
    "type": "object",
    "properties": {
        "to": {"type": "string", "minLength": 1},
        "since": _SINCE,
        "dry_run": _BOOL,
        "again": _BOOL,
        "headers": {"type": "array", "items": _STR},
    },
    "required": ["to"],
    "additionalProperties": False,
}

_PATHS: dict[str, Any] = {
    "/healthz": {"get": _op("liveness", {"200": _json(_obj({"status": _STR}), "alive")})},
    "/readyz": {
        "get": _op(
            "readiness",
            {
                "200": _json(_obj({"ready": _BOOL}), "pools and config are set up"),
                "503": _json(_obj({"ready": _BOOL}), "not ready yet, or stopping"),
            },
        )
    },
    "/openapi.json": {
        "get": _op("this document", {"200": _json({"type": "object"}, "OpenAPI 3.1")})
    },
    "/status": _read("releases, split, rollout, pins and health", _ref("Status")),
    "/status/history": _read("window snapshots every few seconds, oldest first", _HISTORY),
    "/events": _read("recent rollbacks, refused reloads and refused requests", _EVENTS),
    "/fleet": _read(
        "every replica of the fleet seen in the last minute (coordination:), or that this "
        "replica stands alone",
        {"type": "object"},
    ),
    "/metrics": {
        "get": _op(
            "Prometheus text format",
            {"200": {"description": "metrics", "content": {"text/plain": {"schema": _STR}}}}
            | _errors(401),
            security=_READ,
        )
    },
    "/deprecations": _read(
        "the deprecation report",
        _REPORT,
        400,
        503,
        parameters=[_query("days", _POSITIVE, "the report's window (default: telemetry's)")],
    ),
    "/shadow": _read(
        "the diff report of shadow traffic",
        {"type": "object"},
        400,
        parameters=[_query("limit", _POSITIVE, "the top N differences (default 20)")],
    ),
    "/journal": _read(
        "the journaled writes",
        _obj({"file": _STR, "count": _INT, "entries": {"type": "array"}}),
        400,
        503,
        parameters=[
            _query("since", _SINCE, "entries from then on"),
            _query("release", _STR, "entries served by this release"),
            _query("limit", _POSITIVE, "at most this many"),
        ],
    ),
    "/traffic": {
        "put": _op(
            "set the weights (one release given: the other gets the rest)",
            {"200": _json(_ref("Summary"), "the state in force"), **_errors(400, 401, 403, 409)},
            security=_WRITE,
            body=_obj(
                {"weights": {"type": "object", "additionalProperties": _NUM, "minProperties": 1}}
            ),
            body_required=True,
        )
    },
    "/rollback": _change(
        "everything to the stable release, now",
        400,
        body={
            "type": "object",
            "properties": {"reason": _STR},
            "additionalProperties": False,
        },
    ),
    "/promote": _change("the candidate becomes stable at 100%", 409),
    "/rollout": _change("start a rollout, with optional overrides", 400, 409, body=_OVERRIDES),
    "/rollout/pause": _change("pause the rollout", 409),
    "/rollout/resume": _change("resume the rollout", 409),
    "/reload": _change("read the config file again", 400),
    "/journal/replay": _change(
        "send journaled writes again, to a release",
        400,
        503,
        answer="Replay",
        body=_REPLAY,
        body_required=True,
    ),
    "/": {
        "get": _op(
            "the status page (HTML)",
            {"200": {"description": "the page", "content": _HTML}, "303": _SEE_OTHER},
            security=[{"bearer": []}, {"session": []}, {}],
            parameters=[
                _query("sort", {"type": "string"}, "deprecation table column"),
                _query("order", {"type": "string", "enum": ["asc", "desc"]}, "sort order"),
            ],
        )
    },
    "/login": {
        "get": _op(
            "the login form (HTML)",
            {"200": {"description": "the form", "content": _HTML}, "303": _SEE_OTHER},
        ),
        "post": {
            "summary": "log in with the admin or read token: sets the session cookie",
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": _obj({"token": _STR}),
                    }
                },
            },
            "responses": {
                "303": _SEE_OTHER,
                "401": {"description": "wrong token: the form again", "content": _HTML},
                **_errors(403),
            },
        },
    },
    "/logout": {
        "post": _op(
            "end the session", {"303": _SEE_OTHER, **_errors(403)}, security=[{"session": []}, {}]
        )
    },
}

_DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Switchback admin API",
        "version": "1",
        "description": "Health, status, metrics and the traffic controls of one Switchback "
        "process. Errors are {error, code} with the status the README lists.",
    },
    "paths": _PATHS,
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "switchback_session"},
        },
        "schemas": {
            "Error": _obj({"error": _STR, "code": _STR}),
            "Summary": _SUMMARY,
            "Status": _STATUS,
            "Replay": _obj({"to": _STR, "dry_run": _BOOL, "results": {"type": "array"}}),
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """A copy of the document, so that no caller can change what the next one gets."""
    return copy.deepcopy(_DOCUMENT)
