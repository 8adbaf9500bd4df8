"""Finding JSON paths in a body without building the whole document.

A full parse into Python objects builds every object of the body, which for a 100 KB response
costs several times more than forwarding it. simdjson validates the whole text (syntax and
UTF-8, like a full parse) at about a gigabyte per second into its own compact form, and hands out
Python objects only for what is touched: here, the keys and elements along the rules' paths.
The answer is the same as ``jsonpaths.find`` on the fully parsed value, which the property
tests check against orjson.

``proxy.core.typedscan`` answers first and leaves to this scanner what it cannot judge the same
way: bodies msgspec refuses (so simdjson still decides what is malformed) and path sets deeper
than its generated types go. Walking an array here costs a Python object per element, ~2 us
each: a list of 1,000 items that lack the key takes milliseconds.

One parser is kept and reused (simdjson allocates its buffers once). It holds one document at
a time, so ``scan`` finishes with the document before it returns; the event loop calls it from
one thread only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import simdjson

from proxy.core.jsonpaths import ANY, EACH, KEY, JsonPath

_PARSER = simdjson.Parser()
# Containers come as simdjson's lazy proxies, or as plain values once converted.
_OBJECTS = (simdjson.Object, dict)
_ARRAYS = (simdjson.Array, list)


class FieldScanner:
    def __init__(self, paths: Sequence[JsonPath]) -> None:
        self.paths = tuple(paths)
        # Per path: its keys when it names only keys (user.role: the common case, walked by
        # plain look-ups), else its steps for the general walk.
        self.plans: tuple[tuple[bool, tuple[Any, ...]], ...] = tuple(
            (True, tuple(k for _, k in p.steps))
            if all(kind == KEY for kind, _ in p.steps)
            else (False, p.steps)
            for p in self.paths
        )

    def scan(self, body: bytes) -> tuple[bool, ...] | None:
        """Per path, whether it occurs in the JSON ``body``; None when it is not valid JSON."""
        try:
            doc = _PARSER.parse(body)
        except (ValueError, RuntimeError):  # invalid JSON, invalid UTF-8, too deep
            return None
        return tuple(
            _has_keys(doc, plan) if keys_only else _occurs(doc, plan)
            for keys_only, plan in self.plans
        )


def _has_keys(node: Any, keys: tuple[str, ...]) -> bool:
    for key in keys:
        if not isinstance(node, _OBJECTS) or key not in node:
            return False
        node = node[key]
    return True


def _occurs(doc: Any, steps: tuple[tuple[int, str], ...]) -> bool:
    last = len(steps) - 1
    stack: list[tuple[Any, int]] = [(doc, 0)]
    while stack:
        node, i = stack.pop()
        kind, key = steps[i]
        if kind == KEY:
            if not isinstance(node, _OBJECTS) or key not in node:
                continue
            if i == last:
                return True  # present, whatever its value (null included)
            stack.append((node[key], i + 1))
            continue
        if kind == ANY:
            if not isinstance(node, _OBJECTS):
                continue
            # By key: indexing keeps containers lazy (values() would convert them all).
            children: Any = (node[k] for k in node.keys())
        elif kind == EACH and isinstance(node, _ARRAYS):
            children = node
        else:
            continue
        if i == last:
            if len(node):
                return True
            continue
        stack.extend((child, i + 1) for child in children)
    return False
