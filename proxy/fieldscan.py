"""Finding JSON paths in a body without building the whole document.

A full parse builds every object of the body, which for a 100 KB response costs far more than
forwarding it. ``FieldScanner`` compiles a set of paths into msgspec types that declare only
the keys the paths can reach: msgspec then validates the whole text but materializes only those
keys (a leaf is kept as raw bytes, never parsed). The answer is the same as ``jsonpaths.find``
on the fully parsed value, which the property tests check.

One difference from a full parse, accepted for speed: text that the paths never reach is
checked as JSON syntax but not decoded, so invalid UTF-8 or an out-of-range number there does
not make the body "malformed" (the field is still reported where it is).

When the body's shape differs from what the types expect (``user`` is a string where a path
needs an object, the top level is an array, ...), or when the paths themselves need both an
object and an array at one place, the scanner says ``FALLBACK`` and the caller parses fully.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from proxy.jsonpaths import ANY, EACH, KEY, JsonPath

FALLBACK: Final = "fallback"


class _Unsupported(Exception):
    """The paths cannot be expressed as one msgspec type (fall back to a full parse)."""


class _Node:
    """What the paths need at one place of the document."""

    __slots__ = ("keys", "any", "each", "fields", "struct")

    def __init__(self) -> None:
        self.keys: dict[str, _Node] = {}
        self.any: _Node | None = None
        self.each: _Node | None = None
        self.fields: dict[str, str] = {}  # JSON key -> struct field name
        self.struct: type[msgspec.Struct] | None = None

    def child(self, kind: int, key: str) -> _Node:
        if kind == KEY:
            return self.keys.setdefault(key, _Node())
        if kind == ANY:
            self.any = self.any or _Node()
            return self.any
        self.each = self.each or _Node()
        return self.each

    def type(self, counter: list[int]) -> Any:
        shapes = sum((bool(self.keys), self.any is not None, self.each is not None))
        if shapes == 0:
            return msgspec.Raw  # a leaf: only its presence matters
        if shapes > 1:
            raise _Unsupported
        if self.each is not None:
            return list[self.each.nullable(counter)]  # type: ignore[misc]
        if self.any is not None:
            return dict[str, self.any.nullable(counter)]  # type: ignore[misc]
        fields = []
        for i, (key, node) in enumerate(self.keys.items()):
            name = f"f{i}"
            self.fields[key] = name
            tp = node.type(counter)
            if tp is not msgspec.Raw:  # Raw takes any value, null included, and no union
                tp = tp | None | msgspec.UnsetType
            fields.append((name, tp, msgspec.UNSET))
        counter[0] += 1
        try:
            self.struct = msgspec.defstruct(
                f"Scan{counter[0]}", fields, rename={n: k for k, n in self.fields.items()}
            )
        except (TypeError, ValueError):  # keys msgspec cannot name (quotes, control chars)
            raise _Unsupported from None
        return self.struct

    def nullable(self, counter: list[int]) -> Any:
        tp = self.type(counter)
        return tp if tp is msgspec.Raw else tp | None


class FieldScanner:
    def __init__(self, paths: Sequence[JsonPath]) -> None:
        self.paths = tuple(paths)
        root = _Node()
        for path in self.paths:
            node = root
            for kind, key in path.steps:
                node = node.child(kind, key)
        self.root = root
        try:
            self.decoder: msgspec.json.Decoder[Any] | None = msgspec.json.Decoder(root.type([0]))
        except (_Unsupported, TypeError, ValueError):
            self.decoder = None

    def scan(self, body: bytes) -> tuple[bool, ...] | None | str:
        """Per path, whether it occurs; None for malformed JSON; FALLBACK to parse fully."""
        if self.decoder is None:
            return FALLBACK
        try:
            doc = self.decoder.decode(body)
        except msgspec.ValidationError:
            return FALLBACK
        except msgspec.DecodeError:
            return None
        return tuple(_present(doc, self.root, path.steps, 0) for path in self.paths)


def _present(value: Any, node: _Node, steps: tuple[tuple[int, str], ...], i: int) -> bool:
    if i == len(steps):
        return True  # reached: present, whatever its value (null included)
    if value is None or value is msgspec.UNSET:
        return False
    kind, key = steps[i]
    if kind == KEY:
        child = getattr(value, node.fields[key])
        if child is msgspec.UNSET:
            return False
        return _present(child, node.keys[key], steps, i + 1)
    if kind == ANY:
        sub = node.any
        return sub is not None and any(_present(v, sub, steps, i + 1) for v in value.values())
    sub = node.each
    if kind != EACH or sub is None:  # cannot happen: the tree was built from these steps
        return False
    return any(_present(v, sub, steps, i + 1) for v in value)
