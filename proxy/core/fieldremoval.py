"""Removing sunset response fields from a JSON body (``proxy.core.bodyinspect.encode_for``
encodes the result for the client).

Pure (no I/O): ``remove_paths`` takes the decompressed body and the paths to remove (as
``proxy.core.jsonpaths`` parses them) and returns the new JSON text, or None when nothing was
removed (the body goes out as it came, byte for byte) or the body does not parse.
A path's last step says what goes: a key (``user.role``: the key ``role`` of ``user``), every
key (``meta.*``: the object emptied) or every element (``tags[]``: the array emptied).

Only what is removed may change. The body is not built in Python and written again (that
would respell values: ``orjson`` reads an integer past 64 bits as a float and refuses
``1e400``): ``load`` decodes the top-level container with every member a ``msgspec.Raw``
(its bytes, checked but never parsed), and ``remove`` decodes, the same way, only the
containers on a path it follows. ``encode`` writes every Raw as it came, so each value the
paths do not reach keeps its exact text; only the containers decoded lose their insignificant
white space (and the keys of those their escapes), as any re-encoding would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import Raw

from proxy.core.jsonpaths import ANY, EACH, KEY, JsonPath

_OBJECT = msgspec.json.Decoder(dict[str, Raw])
_ARRAY = msgspec.json.Decoder(list[Raw])
_ARRAY_OF_OBJECTS = msgspec.json.Decoder(list[dict[str, Raw]])  # ``items[].role``: one pass
_SCALAR = msgspec.json.Decoder(Raw)
_WHITE = b" \t\n\r"
encode = msgspec.json.encode  # the JSON text of a ``load`` result (Raw values as they came)


class Malformed(ValueError):
    """The body is not JSON (or not UTF-8, or nests too deep to decode)."""


def load(decoded: bytes) -> object:
    """The JSON text ``decoded`` for ``remove``: its top-level object or array decoded one
    level (members as ``msgspec.Raw``), or a scalar as a Raw. ``Malformed`` when it is not
    JSON; the whole text is checked, as a full decode would."""
    if not decoded.isascii():  # msgspec checks UTF-8 only in what it decodes, not what it skips
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed("not UTF-8") from None
    first = decoded.lstrip(_WHITE)[:1]
    decoder: msgspec.json.Decoder[Any] = (
        _OBJECT if first == b"{" else _ARRAY if first == b"[" else _SCALAR
    )
    try:
        return decoder.decode(decoded)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise Malformed(str(exc)) from None


def _open(raw: Raw, decoder: msgspec.json.Decoder[Any]) -> Any:
    """The container ``raw`` holds, decoded one level; None when it is of another type."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError:  # text already checked by ``load``: only the type differs
        return None


def _child(parent: Any, key: Any, need: int, then: int | None) -> Any:
    """``parent[key]`` opened for the next step ``need`` (an object for KEY and ANY, an array
    for EACH; ``then`` is the step after it, if any), stored back so later paths find it
    open; None on a type mismatch."""
    child = parent[key]
    if isinstance(child, Raw):
        if need != EACH:
            child = _open(child, _OBJECT)
        elif then is not None and then != EACH:  # an array of objects, most likely
            child = _open(child, _ARRAY_OF_OBJECTS)
            if child is None:  # some element is not an object
                child = _open(parent[key], _ARRAY)
        else:
            child = _open(child, _ARRAY)
        if child is None:
            return None
        parent[key] = child
    return child


def _after(steps: tuple[tuple[int, str], ...], i: int) -> tuple[int, int | None]:
    """The kinds of the two steps after step ``i`` (which is not the last): (next, then)."""
    then = steps[i + 2][0] if i + 2 < len(steps) else None
    return steps[i + 1][0], then


def remove(value: object, path: JsonPath) -> int:
    """Remove what ``path`` reaches in ``value`` (as from ``load``, edited in place, opening
    the containers the path goes through); how many places were removed. Type mismatches are
    skipped, so this never raises."""
    steps = path.steps
    last = len(steps) - 1
    removed = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, i = stack.pop()
        kind, key = steps[i]
        nxt = _after(steps, i) if i < last else (KEY, None)
        if kind == KEY:
            if not isinstance(node, dict) or key not in node:
                continue
            if i < last:
                child = _child(node, key, *nxt)
                if child is not None:
                    stack.append((child, i + 1))
            else:
                del node[key]
                removed += 1
        elif kind == ANY and isinstance(node, dict):
            if i < last:
                for k in list(node):
                    child = _child(node, k, *nxt)
                    if child is not None:
                        stack.append((child, i + 1))
            else:
                removed += len(node)
                node.clear()
        elif kind == EACH and isinstance(node, list):
            if i < last:
                for j in range(len(node)):
                    child = _child(node, j, *nxt)
                    if child is not None:
                        stack.append((child, i + 1))
            else:
                removed += len(node)
                node.clear()
    return removed


def remove_paths(decoded: bytes, paths: Sequence[JsonPath]) -> bytes | None:
    """The JSON text without what ``paths`` reach; None when nothing was there or the body is
    not JSON."""
    try:
        value = load(decoded)
    except Malformed:
        return None
    removed = sum(remove(value, path) for path in paths)
    return encode(value) if removed else None
