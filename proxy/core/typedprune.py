"""Pruning a JSON body to a field list with a msgspec decoder generated from the list. Pure.

``fieldselect.prune`` on ``orjson.loads`` builds every value of the body in Python and then
walks it. The decoder generated here holds only what the list selects: a selected key becomes
a Struct field (``rename`` gives it its JSON name), a value selected whole a ``msgspec.Raw``
(its bytes, never parsed), and every other key is skipped in C without being built. Encoding
the result writes the Raw bytes as they came. The output is the JSON value ``prune`` gives
(the tests hold the two against each other), with two differences of form only: keys come in
the list's order, not the body's, and the text of a value selected whole keeps its original
spelling (white space, escapes).

Each type also takes the other shapes a value can have (an array: the selection applies to
each element; a scalar: kept whole). Arrays are typed to ``ARRAY_DEPTH`` levels of nesting;
a body nested deeper there or a key msgspec cannot name as a field (a quote, a backslash, a
control character) makes ``prune_bytes`` fall back to a full decode and ``fieldselect.prune``,
so the answer never differs.

Measured at 90 KB (1,000 items, ``user(id,name,role),items(id)``; us per call on the shared
2-core machine): ``orjson.loads`` 640, ``prune`` 720, ``orjson.dumps`` 33; this decoder and
``msgspec.json.encode`` together: see ``loadtest/README.md`` (field selection).
"""

from __future__ import annotations

import functools
from typing import Any, Union

import msgspec
from msgspec import UNSET, Raw

from proxy.core.fieldselect import Tree, parse_fields, prune

ARRAY_DEPTH = 4  # arrays in arrays typed so deep; deeper bodies take the orjson path
_SCALARS = (type(None), bool, int, float, str)
_encode = msgspec.json.encode
_decode = msgspec.json.decode  # not orjson.loads: it reads an integer past 64 bits as a float


class Malformed(ValueError):
    """The body is not JSON (or not UTF-8): it cannot be pruned."""


def _nameable(key: str) -> bool:
    return '"' not in key and "\\" not in key and all(c >= " " for c in key)


def _struct(tree: Tree) -> Any:
    fields = [(f"f{i}", key, sub) for i, (key, sub) in enumerate(tree.items())]
    return msgspec.defstruct(
        "_Selected",
        [(attr, Raw if sub is None else _value(sub), UNSET) for attr, _, sub in fields],
        rename={attr: key for attr, key, _ in fields},
        gc=False,  # decoded data holds no cycles
    )


def _value(tree: Tree) -> Any:
    """The type of a value the selection ``tree`` applies to: an object of those keys, an
    array of such values (to ``ARRAY_DEPTH``), or a scalar kept whole."""
    struct = _struct(tree)
    inner: Any = Union[(struct, *_SCALARS)]  # noqa: UP007 - built at run time
    for _ in range(ARRAY_DEPTH):
        inner = Union[(struct, list[inner], *_SCALARS)]  # noqa: UP007
    return inner


class Pruner:
    """The pruner of one field list; build with ``pruner_for`` (memoized by the list's text)."""

    __slots__ = ("tree", "_decoder")

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self._decoder: msgspec.json.Decoder[Any] | None = None
        if _all_nameable(tree):
            self._decoder = msgspec.json.Decoder(_value(tree))

    def prune_bytes(self, body: bytes) -> bytes:
        """The JSON ``body`` pruned to the list, as JSON; ``Malformed`` when it is not JSON,
        ``RecursionError`` when it nests too deep for either path."""
        if not body.isascii():  # msgspec checks UTF-8 only in what it decodes, not what it skips
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                raise Malformed("not UTF-8") from None
        if self._decoder is not None:
            try:
                return _encode(self._decoder.decode(body))
            except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
                pass  # deeper than typed, or a number msgspec cannot hold: decide below
        try:
            value = _decode(body)
        except msgspec.DecodeError as exc:
            raise Malformed(str(exc)) from None
        return _encode(prune(value, self.tree))


def _all_nameable(tree: Tree) -> bool:
    return all(_nameable(k) and (sub is None or _all_nameable(sub)) for k, sub in tree.items())


@functools.lru_cache(maxsize=256)
def pruner_for(text: str) -> Pruner:
    """The pruner of the field list ``text`` (``FieldsError`` when it does not parse).
    Generating the types costs about a millisecond for a short list: done once per list."""
    return Pruner(parse_fields(text))
