"""Deprecation rules: compiled once per config, matched on every request.

Matching works on the raw request target as the app receives it (``Exchange.path`` and ``.query``:
wire bytes read as latin-1). Path segments compare percent-decoded (as UTF-8, like the config);
``//``, dot segments and a trailing ``/`` are kept (``/v0//users/1`` is not ``/v0/users/{id}``).
Cost per call: a dict lookup by method, one regex match, a precomputed tuple (``_Table``); the
query is split only when a param rule applies to the route.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import compress
from typing import Literal
from urllib.parse import unquote_to_bytes

from proxy.core.jsonpaths import JsonPath, parse_path
from proxy.core.typedscan import TypedScanner
from proxy.schema import DeprecationConfig

Kind = Literal["endpoint", "param", "request_field", "field"]
KINDS: tuple[Kind, ...] = ("endpoint", "param", "request_field", "field")

_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Z]+")  # an RFC 9110 token without lower case
_VARIABLE = re.compile(r"\{[^{}/]+\}")


def _byte_pattern(byte: int) -> str:  # one decoded byte in a raw path: itself or %XX
    escape = "%" + "".join(f"[{c}{c.lower()}]" if c.isalpha() else c for c in f"{byte:02X}")
    if byte == 0x2F:  # a "/" inside a segment can only have arrived encoded
        return escape
    if byte == 0x25:  # a "%" stays itself only when no two hex digits follow
        return f"(?:{escape}|%(?![0-9A-Fa-f]{{2}}))"
    return f"(?:{re.escape(chr(byte))}|{escape})"


_BYTE_PATTERNS = tuple(_byte_pattern(b) for b in range(256))


Segment = bytes | None  # a literal, percent-decoded; None: a {variable}


@dataclass(frozen=True, slots=True)
class Route:
    """``GET /users/{id}``, ``/users/{id}`` (any method) or ``GET`` (any path)."""

    text: str
    method: str | None  # None: any method
    segments: tuple[Segment, ...] | None  # "/users/{id}": (b"users", None); None: any path
    regex: re.Pattern[str] | None  # fullmatches a raw path with these segments

    def matches(self, method: str, raw_path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.regex is None or self.regex.fullmatch(raw_path) is not None


def parse_route(text: str) -> Route:
    """Parse ``text``; ``ValueError`` when it is not ``[METHOD] [/path]``.

    A ``{name}`` segment matches exactly one non-empty segment; any other segment is a literal,
    compared percent-decoded. Methods are case-sensitive (RFC 9110): ``get`` is refused, as it
    is far more likely a typo than a method.
    """
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        raise ValueError("expected 'METHOD /path', '/path' or 'METHOD'")
    method = segments = regex = None
    if len(parts) == 2 or not parts[0].startswith("/"):
        if not _METHOD.fullmatch(parts[0]):
            raise ValueError(f"{parts[0]!r} is not an HTTP method (upper case, like GET)")
        method = parts[0]
    if len(parts) == 2 or parts[0].startswith("/"):
        segments = _segments(parts[-1])
        regex = re.compile("".join(_segment_pattern(s) for s in segments))
    return Route(" ".join(parts), method, segments, regex)


def _segments(template: str) -> tuple[Segment, ...]:
    if not template.startswith("/"):
        raise ValueError(f"{template!r}: the path must start with '/'")
    if "?" in template or "#" in template:
        raise ValueError(f"{template!r}: a path has no '?' or '#'")
    out: list[Segment] = []
    for segment in template[1:].split("/"):
        if "{" in segment or "}" in segment:
            if not _VARIABLE.fullmatch(segment):
                raise ValueError(f"{segment!r}: a variable is a whole segment, like {{id}}")
            out.append(None)
        else:
            out.append(unquote_to_bytes(segment.encode("utf-8", "surrogatepass")))
    return tuple(out)


def _segment_pattern(segment: Segment) -> str:
    return "/" + ("[^/]+" if segment is None else "".join(_BYTE_PATTERNS[b] for b in segment))


def _may_overlap(a: tuple[Segment, ...], b: tuple[Segment, ...]) -> bool:
    """Whether some raw path matches both segment lists (a variable takes any non-empty one)."""
    return len(a) == len(b) and all(
        x == y or (x is None and y != b"") or (y is None and x != b"")
        for x, y in zip(a, b, strict=True)
    )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Rule:
    """One compiled config entry. Compared and hashed by identity (cheap as a dict key)."""

    id: str
    kind: Kind
    element: str  # metric label: the JSON path text, the parameter name or the endpoint
    route: Route | None  # where it applies (the endpoint itself for endpoint rules)
    path: JsonPath | None = None  # field and request_field rules
    param: str | None = None  # param rules
    deprecated_at: int  # unix seconds
    sunset_at: int | None = None
    link: str | None = None
    sunset_link: str | None = None
    replacement: str | None = None


_NONE: tuple[Rule, ...] = ()


@functools.lru_cache(maxsize=256)
def _scanner(rules: tuple[Rule, ...]) -> tuple[TypedScanner, tuple[Rule, ...]]:
    """The scanner of one route's body rules, and those rules (few distinct sets in practice):
    a decoder generated from their paths is built once per set (~1 ms)."""
    with_path = tuple(r for r in rules if r.path)
    return TypedScanner([r.path for r in with_path if r.path]), with_path


class _Table:
    """The rules for one method behind a gate: the alternation of their distinct path patterns.

    The gate's match names the first pattern that matches; only later ones that can match the
    same paths (``_may_overlap``, known at compile time) are tried on their own.
    """

    __slots__ = ("gate", "pathless", "entries", "fixed", "also")

    def __init__(self, rules: Sequence[Rule]) -> None:
        numbers: dict[str, int] = {}  # pattern -> its number among the distinct paths
        paths: list[tuple[tuple[Segment, ...], re.Pattern[str]]] = []
        entries: list[tuple[Rule, int]] = []  # (rule, path number, or -1 for any path)
        for rule in rules:
            route = rule.route
            if route is None or route.segments is None or route.regex is None:
                entries.append((rule, -1))
                continue
            k = numbers.get(route.regex.pattern)
            if k is None:
                k = numbers[route.regex.pattern] = len(paths)
                paths.append((route.segments, route.regex))
            entries.append((rule, k))
        self.entries = tuple(entries)
        self.pathless = tuple(r for r, k in entries if k < 0) or _NONE
        self.gate = re.compile("|".join(f"({p})" for p in numbers)) if numbers else None
        self.fixed = tuple(tuple(r for r, i in entries if i in (-1, k)) for k in range(len(paths)))
        self.also = tuple(
            tuple(
                (j, rx) for j, (other, rx) in enumerate(paths) if j > k and _may_overlap(s, other)
            )
            for k, (s, _) in enumerate(paths)
        )

    def match(self, raw_path: str) -> tuple[Rule, ...]:
        m = None if self.gate is None else self.gate.fullmatch(raw_path)
        if m is None:
            return self.pathless
        k = (m.lastindex or 1) - 1
        also = self.also[k]
        if not also:
            return self.fixed[k]
        hit = {k}
        hit.update(j for j, rx in also if rx.fullmatch(raw_path))
        return tuple(r for r, i in self.entries if i < 0 or i in hit)


class _RouteIndex:
    __slots__ = ("by_method", "other", "anywhere")

    def __init__(self, rules: Sequence[Rule]) -> None:
        def table(method: str | None) -> _Table:  # None: a method no rule names
            return _Table([r for r in rules if not r.route or r.route.method in (None, method)])

        methods = {r.route.method for r in rules if r.route and r.route.method}
        self.by_method = {m: table(m) for m in methods}
        self.other = table(None)
        # When no rule names a route, every request gets the same rules: the caller need not
        # decode the path to ask.
        routed = any(r.route for r in rules)
        self.anywhere: tuple[Rule, ...] | None = None if routed else self.other.pathless

    def match(self, method: str, raw_path: str) -> tuple[Rule, ...]:
        return self.by_method.get(method, self.other).match(raw_path)


class RuleSet:
    """The compiled deprecation rules of one config. Immutable; replaced whole on reload."""

    __slots__ = (
        "rules",
        "request_side",
        "_endpoints",
        "_params",
        "_request_fields",
        "_response_fields",
        "response_fields_anywhere",
    )

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        # Whether any rule looks at requests at all (an endpoint, a parameter, a request
        # field): when none does, the request side costs no look-up.
        self.request_side = any(r.kind != "field" for r in rules)
        self._endpoints = _RouteIndex([r for r in rules if r.kind == "endpoint"])
        self._params = _RouteIndex([r for r in rules if r.kind == "param"])
        self._request_fields = _RouteIndex([r for r in rules if r.kind == "request_field"])
        self._response_fields = _RouteIndex([r for r in rules if r.kind == "field"])
        # The response-field rules of every request when none of them names a route (a field
        # deprecated wherever it appears), else None: ask ``response_field_rules``.
        self.response_fields_anywhere = self._response_fields.anywhere

    @classmethod
    def compile(cls, entries: Sequence[DeprecationConfig]) -> RuleSet:
        """Compile entries that ``proxy.config.checks`` validated (ids, dates, links).

        ``ValueError`` naming ``deprecations[i].key`` and the value for what compiling itself
        needs: exactly one kind, a route and path that parse, no ``on`` beside ``endpoint``.
        """
        return cls([_compile(entry, f"deprecations[{i}]") for i, entry in enumerate(entries)])

    def match_request(self, method: str, raw_path: str, raw_query: str | None) -> tuple[Rule, ...]:
        """Endpoint rules whose route matches, then param rules whose parameter the query names."""
        endpoints = self._endpoints.match(method, raw_path)
        params = self._params.match(method, raw_path) if raw_query else _NONE
        if not params:
            return endpoints
        names = query_names(raw_query)
        return endpoints + tuple(r for r in params if r.param in names)

    def request_field_rules(self, method: str, raw_path: str) -> tuple[Rule, ...]:
        return self._request_fields.match(method, raw_path)

    def response_field_rules(self, method: str, raw_path: str) -> tuple[Rule, ...]:
        return self._response_fields.match(method, raw_path)

    @staticmethod
    def match_body(rules: tuple[Rule, ...], value_bytes: bytes) -> tuple[Rule, ...] | None:
        """The rules whose JSON path occurs in the (decompressed) JSON body; None if malformed.

        The body is parsed once for all the rules (``proxy.core.typedscan``), also when none of
        their keys occurs in it: searching the bytes for the keys first, as was done before the
        typed decoder, now costs about what it saves (``loadtest/inspection.py``: ~2 us more
        per 1 KB body; at 87 KB without the keys, ~200 us of searches against a ~130 us
        decode; each further rule adds a search of the whole body).
        """
        if not rules:
            return _NONE
        scanner, with_path = _scanner(rules)
        seen = scanner.scan(value_bytes)
        if seen is None:
            return None
        return tuple(compress(with_path, seen)) or _NONE


def query_names(raw_query: str | None) -> set[str]:
    """The parameter names of a raw query: split on ``&``, percent-decoded, ``+`` as space."""
    if not raw_query:
        return set()
    names = [part.partition("=")[0] for part in raw_query.split("&")]
    if "%" in raw_query or "+" in raw_query or not raw_query.isascii():
        return {_decoded(name) for name in names}
    return set(names)


def _decoded(raw: str) -> str:
    """A raw query component percent-decoded (``+`` is a space), read as UTF-8."""
    try:
        wire = raw.encode("latin-1")  # the bytes the listener decoded as latin-1
    except UnicodeEncodeError:  # not from the wire: a caller's own text
        wire = raw.encode("utf-8", "surrogatepass")
    return unquote_to_bytes(wire.replace(b"+", b" ")).decode("utf-8", "replace")


def _compile(entry: DeprecationConfig, where: str) -> Rule:
    given = [(kind, getattr(entry, kind)) for kind in KINDS if getattr(entry, kind) is not None]
    if len(given) != 1:
        raise ValueError(f"{where}: set exactly one of {', '.join(KINDS)}")
    kind, text = given[0]
    if kind == "endpoint" and entry.on is not None:
        raise ValueError(f"{where}.on: an endpoint rule names its route itself")
    key, value = ("endpoint", text) if kind == "endpoint" else ("on", entry.on)
    path = None
    try:
        route = None if value is None else parse_route(value)
        if kind in ("field", "request_field"):
            key, value = kind, text
            path = parse_path(text)
        if kind == "endpoint" and route and route.segments is None:
            raise ValueError("an endpoint has a path: 'METHOD /path' or '/path'")
    except ValueError as err:
        raise ValueError(f"{where}.{key}: {value!r}: {err}") from None
    return Rule(
        id=entry.id,
        kind=kind,
        element=text,
        route=route,
        path=path,
        param=text if kind == "param" else None,
        deprecated_at=_unix(entry.deprecated),
        sunset_at=None if entry.sunset is None else _unix(entry.sunset),
        link=entry.link,
        sunset_link=entry.sunset_link,
        replacement=entry.replacement,
    )


def _unix(when: dt.datetime) -> int:
    """Unix seconds (floor); a naive datetime is taken as UTC."""
    return calendar.timegm(when.utctimetuple())


def unique(rules: Sequence[Rule] | None) -> list[Rule]:
    """``rules`` without repeats (by id), in the order of their first appearance: an element is
    counted once per exchange however many times it matched."""
    if not rules or len(rules) == 1:  # the usual case: nothing to drop
        return list(rules or ())
    first: dict[str, Rule] = {}
    for rule in rules:
        first.setdefault(rule.id, rule)
    return list(first.values())
