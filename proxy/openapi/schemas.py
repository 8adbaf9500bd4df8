"""Where a JSON body carries the schema properties an OpenAPI document marks ``deprecated``.

``deprecated_paths(schema, where, refs)`` walks one request or response schema and returns
every deprecated position in it as a JSON path of ``proxy.core.jsonpaths`` (``items[].owner``;
``[].id`` inside a top-level array; ``meta.*.flag`` under ``additionalProperties``), with the
schema objects that marked it (their ``x-sunset`` and date extensions are read later).

- ``$ref`` is followed through ``Refs`` (``referencing``'s resolver, so JSON Pointer escapes,
  ``definitions`` and ``components`` alike); ``deprecated`` beside a ``$ref`` counts too (3.1
  allows siblings, and 3.0 documents write them anyway). A reference already being expanded on
  the way down stops the walk there: a recursive schema (a tree of nodes) yields its paths once.
- ``allOf``, ``oneOf`` and ``anyOf`` members describe the same position; ``items`` and
  ``prefixItems`` each element (``[]``); ``additionalProperties`` and ``patternProperties``
  any key (``*``). ``not`` describes what is absent, and is not walked.
- A deprecated schema at the root (the whole body) names no field; the caller says so.

Pure: the resolver is handed in; nothing here reads a file or a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urldefrag, urljoin

from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from proxy.config.values import dotted
from proxy.core.jsonpaths import ANY, EACH, KEY, Step
from proxy.errors import ConfigError

MAX_DEPTH = 32  # JSON path steps; deeper positions are not walked (no real body nests so)
# Schema objects visited for one body: YAML aliases and shared $refs can make a small file
# describe exponentially many positions; real bodies have thousands at most.
MAX_POSITIONS = 200_000
Where = tuple[str | int, ...]  # a key path in the document, for messages


@dataclass(frozen=True, slots=True)
class Found:
    """One deprecated position: its path, where the document marks it, and the marking
    schema objects (the one beside a ``$ref`` first, then what it resolves to)."""

    steps: tuple[Step, ...]
    where: Where
    marks: tuple[Mapping[str, Any], ...]


class Refs:
    """Resolves ``$ref`` against the document ``uri`` holds; ``retrieve`` loads other files
    (``referencing.Registry``'s retrieve hook), or none is allowed."""

    def __init__(
        self,
        document: Any,
        uri: str,
        source: str,
        retrieve: Callable[[str], Resource[Any]] | None = None,
    ) -> None:
        # attrs' field alias ``retrieve`` is not known to mypy's attrs plugin
        registry: Registry[Any] = (
            Registry(retrieve=retrieve) if retrieve else Registry()  # type: ignore[call-arg]
        )
        self.uri = uri
        self.source = source  # the file name in messages
        self._resolver = registry.with_resource(uri, Resource.opaque(document)).resolver(uri)

    def follow(self, ref: Any, base: str, where: Where) -> tuple[Any, str, Where]:
        """The object ``ref`` names (relative to ``base``), its absolute URI, its key path."""
        if not isinstance(ref, str):
            raise ConfigError(f"{self.source}: {dotted(*where)}: $ref is not a string")
        target = urljoin(base, ref)
        try:
            contents = self._resolver.lookup(target).contents
        except Unresolvable:
            raise ConfigError(
                f"{self.source}: {dotted(*where)}: $ref {ref!r} cannot be resolved"
            ) from None
        return contents, target, self.location(target)

    def resolve(self, node: Any, where: Where) -> tuple[Any, Where]:
        """``node`` with its ``$ref`` chain followed (a parameter, a response, a path item)."""
        base, seen = self.uri, set[str]()
        while isinstance(node, Mapping) and "$ref" in node:
            node, base, where = self.follow(node["$ref"], base, where)
            if base in seen:
                raise ConfigError(f"{self.source}: {dotted(*where)}: $ref refers to itself")
            seen.add(base)
        return node, where

    def location(self, uri: str) -> Where:
        """``file:///x/api.yaml#/components/schemas/Pet`` -> ``components.schemas.Pet``."""
        url, fragment = urldefrag(uri)
        parts = [unquote(p).replace("~1", "/").replace("~0", "~") for p in fragment.split("/")]
        keys: Where = tuple(p for p in parts if p)
        return keys if url == self.uri else (url.rsplit("/", 1)[-1], *keys)


def deprecated_paths(schema: Any, where: Where, refs: Refs) -> list[Found]:
    """Every deprecated position in ``schema``, in document order (duplicates kept)."""
    out: list[Found] = []
    budget = [MAX_POSITIONS]
    _walk(schema, (), where, refs.uri, frozenset(), refs, out, budget)
    return out


def _walk(
    node: Any,
    steps: tuple[Step, ...],
    where: Where,
    base: str,
    expanding: frozenset[str],
    refs: Refs,
    out: list[Found],
    budget: list[int],
) -> None:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"{refs.source}: {dotted(*where)}: the schema describes over {MAX_POSITIONS} "
            "positions; not walked"
        )
    marks: list[Mapping[str, Any]] = []
    cycle = False
    while isinstance(node, Mapping) and "$ref" in node and not cycle:
        marks.append(node)
        node, base, where = refs.follow(node["$ref"], base, where)
        cycle = base in expanding
        expanding = expanding | {base}
    if not isinstance(node, Mapping):
        return
    marks.append(node)
    if any(mark.get("deprecated") is True for mark in marks):
        out.append(Found(steps, where, tuple(marks)))
    if cycle or len(steps) >= MAX_DEPTH:
        return
    for added, at, sub in _children(node, where):
        _walk(sub, steps + added, at, base, expanding, refs, out, budget)


Child = tuple[tuple[Step, ...], Where, Any]  # path steps added, key path, sub-schema


def _children(node: Mapping[str, Any], where: Where) -> list[Child]:
    """Each position ``node`` describes below itself."""
    out: list[Child] = []
    properties = node.get("properties")
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            out.append((((KEY, _name(name)),), (*where, "properties", name), sub))
    for keyword, step in (("items", EACH), ("prefixItems", EACH), ("additionalProperties", ANY)):
        value = node.get(keyword)
        members: list[Any] = value if isinstance(value, list) else [value]  # a tuple: a list
        for i, sub in enumerate(members):
            at = (*where, keyword, i) if isinstance(value, list) else (*where, keyword)
            if isinstance(sub, Mapping):
                out.append((((step, ""),), at, sub))
    patterns = node.get("patternProperties")
    if isinstance(patterns, Mapping):
        for pattern, sub in patterns.items():
            out.append((((ANY, ""),), (*where, "patternProperties", pattern), sub))
    for keyword in ("allOf", "oneOf", "anyOf"):
        group = node.get(keyword)
        if isinstance(group, list):
            for i, sub in enumerate(group):
                out.append(((), (*where, keyword, i), sub))
    return out


def _name(key: Any) -> str:
    """A property name as JSON spells it (YAML may have read ``200:`` as an integer)."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def path_text(steps: tuple[Step, ...]) -> str:
    """Steps -> the path as the config writes it: ``items[].owner``, ``[].id``, ``"a.b".c``."""
    text = ""
    for kind, name in steps:
        if kind == EACH:
            text += "[]"
            continue
        part = "*" if kind == ANY else _quote(name)
        text += f".{part}" if text else part
    return text


def _quote(name: str) -> str:
    plain = name and not name.startswith('"') and not any(c in name for c in '.[]*"\\')
    if plain:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
