"""An OpenAPI 3.x or Swagger 2.0 document -> the ``deprecations:`` entries of a config.

``convert(doc, refs, options)`` returns the rules as plain dicts (the keys of
``proxy.schema.DeprecationConfig``), sorted by path, method and kind, and notes on what it left
out. What maps to what:

    operation ``deprecated: true``                 endpoint: "GET /v1/pets/{petId}"
    query parameter ``deprecated: true``           param: sort, on: the operation
    request body property (JSON media types)       request_field: owner.name, on: the operation
    response body property (any status, JSON)      field: items[].owner, on: the operation
    header, path and cookie parameters             skipped, with a note: the config has query
                                                   parameters only; so are form fields

Routes are the document's path templates (the config's ``{name}`` segments) under a base path:
``options.base_path`` when given, else the path of the operation's first server URL (OpenAPI 3,
variables at their defaults) or ``basePath`` (Swagger 2.0). A template the config cannot write
(``/files/{name}.{ext}``) is skipped with a note.

Dates: ``x-deprecated-at`` or ``x-deprecation-date`` on the marked object, else
``options.deprecated_on``; ``x-sunset`` gives the sunset (ISO date or timestamp, or an HTTP
date). ``proxy.openapi.entries`` turns the dates and ids into entries. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from proxy.config.values import dotted
from proxy.core.jsonpaths import parse_path
from proxy.core.rules import parse_route
from proxy.openapi.schemas import Refs, Where, deprecated_paths, path_text

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
KIND_ORDER = ("endpoint", "param", "request_field", "field")


@dataclass(frozen=True, slots=True)
class Element:
    """One deprecated element found: its config kind and value, the operation it is on."""

    kind: str  # endpoint | param | request_field | field
    value: str  # the route, the parameter name or the JSON path
    method: str  # GET
    template: str  # /pets/{petId}, as the document writes it (ids come from it)
    route: str  # "GET /v1/pets/{petId}"
    where: Where
    marks: tuple[Mapping[str, Any], ...]


@dataclass(slots=True)
class Found:
    elements: list[Element] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def convert(doc: Mapping[str, Any], refs: Refs, base_path: str | None) -> Found:
    """Every deprecated element of ``doc``, sorted; ``base_path`` None: the document's."""
    found = Found()
    paths = doc.get("paths")
    if not isinstance(paths, Mapping):
        return found
    swagger = "swagger" in doc
    for template in sorted(paths, key=str):
        item, item_where = refs.resolve(paths[template], ("paths", template))
        if not isinstance(item, Mapping):
            continue
        for method in METHODS:
            op = item.get(method)
            if not isinstance(op, Mapping):
                continue
            where = (*item_where, method)
            prefix = base_path if base_path is not None else _base(doc, item, op, swagger)
            route = f"{method.upper()} {_join(prefix, str(template))}"
            try:
                parse_route(route)
            except ValueError as exc:
                found.notes.append(f"{refs.source}: {dotted(*where)}: skipped: {route}: {exc}")
                continue
            op_found = _operation(op, item, where, refs, swagger, found.notes)
            for kind, value, at, marks in op_found:
                value = route if kind == "endpoint" else value
                element = Element(kind, value, method.upper(), str(template), route, at, marks)
                found.elements.append(element)
    found.elements.sort(key=_order)
    return found


def _order(e: Element) -> tuple[str, int, int, str]:
    return (e.template, METHODS.index(e.method.lower()), KIND_ORDER.index(e.kind), e.value)


Hit = tuple[str, str, Where, tuple[Mapping[str, Any], ...]]  # kind, value, where, marks


def _operation(
    op: Mapping[str, Any],
    item: Mapping[str, Any],
    where: Where,
    refs: Refs,
    swagger: bool,
    notes: list[str],
) -> list[Hit]:
    hits: list[Hit] = []
    if op.get("deprecated") is True:
        hits.append(("endpoint", "", where, (op,)))
    bodies: list[tuple[Any, Where]] = []
    for param, at in _parameters(op, item, where, refs):
        place = param.get("in")
        if place == "body":  # Swagger 2.0: the request body's schema
            bodies.append((param.get("schema"), (*at, "schema")))
        elif param.get("deprecated") is True:
            name = param.get("name")
            if place == "query" and isinstance(name, str) and name:
                hits.append(("param", name, at, (param,)))
            else:
                what = f"{place} parameter {name!r}" if place else f"parameter {name!r}"
                notes.append(
                    f"{refs.source}: {dotted(*at)}: {what} is deprecated: skipped "
                    "(the config knows query parameters only)"
                )
    if not swagger and "requestBody" in op:
        body, at = refs.resolve(op["requestBody"], (*where, "requestBody"))
        bodies.extend(_json_schemas(body, at))
    for schema, at in bodies:
        hits.extend(_fields("request_field", schema, at, refs, notes))
    responses = op.get("responses")
    if isinstance(responses, Mapping):
        for code, response in responses.items():
            resp, at = refs.resolve(response, (*where, "responses", code))
            if swagger and isinstance(resp, Mapping) and "schema" in resp:
                hits.extend(_fields("field", resp["schema"], (*at, "schema"), refs, notes))
            elif not swagger:
                for schema, schema_at in _json_schemas(resp, at):
                    hits.extend(_fields("field", schema, schema_at, refs, notes))
    return _unique(hits)


def _parameters(
    op: Mapping[str, Any], item: Mapping[str, Any], where: Where, refs: Refs
) -> Iterator[tuple[Mapping[str, Any], Where]]:
    """The operation's parameters: the path item's, overridden by the operation's own
    (same ``name`` and ``in``), ``$ref`` resolved."""
    chosen: dict[tuple[Any, Any], tuple[Mapping[str, Any], Where]] = {}
    item_where = where[:-1]
    for owner, at in ((item, item_where), (op, where)):
        params = owner.get("parameters")
        if not isinstance(params, list):
            continue
        for i, raw in enumerate(params):
            param, param_at = refs.resolve(raw, (*at, "parameters", i))
            if isinstance(param, Mapping):
                chosen[(param.get("name"), param.get("in"))] = (param, param_at)
    yield from chosen.values()


def _json_schemas(holder: Any, where: Where) -> list[tuple[Any, Where]]:
    """The schemas of a 3.x request body or response for JSON media types."""
    content = holder.get("content") if isinstance(holder, Mapping) else None
    if not isinstance(content, Mapping):
        return []
    return [
        (media["schema"], (*where, "content", name, "schema"))
        for name, media in content.items()
        if is_json(str(name)) and isinstance(media, Mapping) and "schema" in media
    ]


def is_json(media_type: str) -> bool:
    """What Switchback inspects: ``application/json``, ``application/*+json``, or any."""
    kind = media_type.split(";", 1)[0].strip().lower()
    return kind in ("application/json", "*/*", "application/*") or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def _fields(kind: str, schema: Any, where: Where, refs: Refs, notes: list[str]) -> list[Hit]:
    hits: list[Hit] = []
    for found in deprecated_paths(schema, where, refs):
        if not found.steps:
            what = "request body" if kind == "request_field" else "response body"
            notes.append(
                f"{refs.source}: {dotted(*found.where)}: the whole {what} schema is deprecated: "
                "skipped (no field to name; deprecate the operation instead)"
            )
            continue
        text = path_text(found.steps)
        parse_path(text)  # path_text writes only what the grammar accepts
        hits.append((kind, text, found.where, found.marks))
    return hits


def _unique(hits: list[Hit]) -> list[Hit]:
    """The first of each (kind, value): a field in several responses is one rule."""
    seen: dict[tuple[str, str], Hit] = {}
    for hit in hits:
        seen.setdefault((hit[0], hit[1]), hit)
    return list(seen.values())


def _base(
    doc: Mapping[str, Any], item: Mapping[str, Any], op: Mapping[str, Any], swagger: bool
) -> str:
    """The base path the document gives the operation."""
    if swagger:
        base = doc.get("basePath")
        return base if isinstance(base, str) else ""
    for owner in (op, item, doc):
        servers = owner.get("servers")
        if isinstance(servers, list) and servers and isinstance(servers[0], Mapping):
            return server_path(servers[0])
    return ""


def server_path(server: Mapping[str, Any]) -> str:
    """The path of a 3.x server URL, its ``{variables}`` at their defaults."""
    url = server.get("url")
    if not isinstance(url, str):
        return ""
    variables = server.get("variables")
    if isinstance(variables, Mapping):
        for name, spec in variables.items():
            default = spec.get("default") if isinstance(spec, Mapping) else None
            url = url.replace("{" + str(name) + "}", str(default if default is not None else ""))
    if "://" not in url and not url.startswith("//"):
        return urlsplit("http://host" + ("" if url.startswith("/") else "/") + url).path
    return urlsplit(url).path


def _join(prefix: str, template: str) -> str:
    prefix = prefix.strip().rstrip("/")
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix
    return prefix + template if template.startswith("/") else f"{prefix}/{template}"
