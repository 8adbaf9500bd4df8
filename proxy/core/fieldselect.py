"""Field selection: a client's list of the fields it reads, parsed, rendered, and applied. Pure.

The syntax is Google's partial-response ``fields`` parameter (positions in errors count
characters from 0):

    fields    = selector *( "," selector )
    selector  = path [ "(" fields ")" ]
    path      = name *( "/" name )                ; "a/b" is "a(b)"
    name      = 1*( any character except , ( ) / and white space )

Spaces and tabs around names, commas and parentheses are ignored. A list holds at most
``MAX_NAMES`` names in all and nests at most ``MAX_DEPTH`` levels. A name selects that key of
an object with its whole value; ``name(...)`` selects inside it. On an array a selection
applies to each element (also at the top level). A value with nothing to select inside (a
string under ``user(id)``) is kept whole: the client named it. Selecting a key twice merges
(``a(b),a(c)`` is ``a(b,c)``; ``a,a(b)`` is ``a``).

A parsed list is a ``Tree``: key -> ``None`` (the whole value) or the tree inside it. Trees
returned by ``parse_fields`` are memoized and shared: never change one.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from proxy.core.jsonpaths import ANY, EACH, JsonPath

Tree = Mapping[str, "Tree | None"]

MAX_DEPTH = 32  # nested parentheses or slashes; deeper lists are refused
# Names in a list, in all (a repeated name counts each time). The list arrives in a request
# head (up to 64 KB, some 20,000 names) and ``typedprune`` generates a msgspec type per
# selection on the event loop: 7,500 names took 0.7 s, long enough for load shedding to
# answer other clients 503. 256 names (1 ms flat, 22 ms as 85 groups of three nested ones)
# are more than a client reads of one answer.
MAX_NAMES = 256
_STOP = frozenset(",()/ \t")
_SPACE = " \t"


class FieldsError(ValueError):
    """A field list that does not parse: ``position`` (a character offset) and ``expected``."""

    def __init__(self, position: int, expected: str) -> None:
        super().__init__(f"at position {position}: expected {expected}")
        self.position = position
        self.expected = expected


@functools.lru_cache(maxsize=1024)
def parse_fields(text: str) -> Tree:
    """The tree of ``text``; ``FieldsError`` when it is not a field list. Memoized: clients
    send the same list again and again."""
    parser = _Parser(text)
    tree = parser.fields(0)
    parser.skip()
    if parser.i != len(text):
        what = "',' or the end" if text[parser.i] != ")" else "',' or the end (unmatched ')')"
        raise FieldsError(parser.i, what)
    return tree


class _Parser:
    __slots__ = ("text", "i", "names")

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.names = 0

    def skip(self) -> None:
        text, i = self.text, self.i
        while i < len(text) and text[i] in _SPACE:
            i += 1
        self.i = i

    def peek(self) -> str:
        self.skip()
        return self.text[self.i] if self.i < len(self.text) else ""

    def fields(self, depth: int) -> dict[str, Tree | None]:
        tree: dict[str, Tree | None] = {}
        while True:
            path = [self.name()]
            while self.peek() == "/":
                self.i += 1
                path.append(self.name())
            if depth + len(path) > MAX_DEPTH:
                raise FieldsError(self.i, f"at most {MAX_DEPTH} levels of nesting")
            sub: Tree | None = None
            if self.peek() == "(":
                self.i += 1
                sub = self.fields(depth + len(path))
                if self.peek() != ")":
                    raise FieldsError(self.i, "',' or ')'")
                self.i += 1
            for name in reversed(path[1:]):
                sub = {name: sub}
            _merge(tree, path[0], sub)
            if self.peek() != ",":
                return tree
            self.i += 1

    def name(self) -> str:
        self.skip()
        text, start = self.text, self.i
        i = start
        while i < len(text) and text[i] not in _STOP:
            i += 1
        if i == start:
            raise FieldsError(start, "a field name")
        self.names += 1
        if self.names > MAX_NAMES:  # stops reading a long list here, before any type is made
            raise FieldsError(start, f"at most {MAX_NAMES} field names")
        self.i = i
        return text[start:i]


def _merge(tree: dict[str, Tree | None], name: str, sub: Tree | None) -> None:
    if name not in tree:
        tree[name] = sub
        return
    old = tree[name]
    if old is None or sub is None:
        tree[name] = None  # the whole value wins over a part of it
        return
    merged = dict(old)
    for key, value in sub.items():
        _merge(merged, key, value)
    tree[name] = merged


def render(tree: Tree) -> str:
    """The canonical text of ``tree`` (``parse_fields(render(t)) == t``)."""
    return ",".join(name if sub is None else f"{name}({render(sub)})" for name, sub in tree.items())


def prune(value: Any, tree: Tree) -> Any:
    """``value`` (as from ``orjson.loads``) with only the selected fields, keys in their order.

    Never changes ``value``; shares the parts selected whole. ``RecursionError`` only for
    arrays nested about a thousand deep (the caller passes such a body through).
    """
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in tree:
                sub = tree[key]
                out[key] = item if sub is None else prune(item, sub)
        return out
    if isinstance(value, list):
        return [prune(item, tree) for item in value]
    return value


def declares(tree: Tree, path: JsonPath) -> bool:
    """Whether a client that selected ``tree`` reads (some of) what ``path`` names.

    ``[]`` steps pass through (a selection applies to each element); ``*`` is declared when
    any selected key declares the rest; a path that ends inside a selection, or a selection
    that takes a whole value the path goes into, declares it.
    """
    return _declares(tree, path.steps, 0)


def _declares(node: Tree | None, steps: tuple[tuple[int, str], ...], i: int) -> bool:
    while i < len(steps):
        if node is None:
            return True
        kind, key = steps[i]
        i += 1
        if kind == EACH:
            continue
        if kind == ANY:
            return any(_declares(sub, steps, i) for sub in node.values())
        if key not in node:
            return False
        node = node[key]
    return True


def query_value(raw_query: str | None, name: str) -> str | None:
    """The first value of the query parameter ``name`` in a raw query, percent-decoded
    (``+`` is a space) as UTF-8; None when the query does not name it. Keys are compared as
    bytes, so another parameter whose name is not UTF-8 is no concern of field selection;
    ``UnicodeDecodeError`` when the bytes of the value of ``name`` are not UTF-8."""
    if not raw_query:
        return None
    wanted = name.encode("utf-8")
    for part in raw_query.split("&"):
        key, _, value = part.partition("=")
        if _unquote_bytes(key) == wanted:
            return _unquote_bytes(value).decode("utf-8")
    return None


def _unquote_bytes(raw: str) -> bytes:
    wire = raw.encode("latin-1", "replace")
    if b"%" not in wire and b"+" not in wire:
        return wire
    return unquote_to_bytes(wire.replace(b"+", b" "))
