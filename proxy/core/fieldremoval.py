"""Removing sunset response fields from a JSON body (``proxy.core.bodyinspect.encode_for``
encodes the result for the client).

Pure (no I/O): ``remove_paths`` takes the decompressed body and the paths to remove (as
``proxy.core.jsonpaths`` parses them) and returns the new JSON text, or None when nothing was
removed (the body goes out as it came, byte for byte) or the body does not parse.
A path's last step says what goes: a key (``user.role``: the key ``role`` of ``user``), every
key (``meta.*``: the object emptied) or every element (``tags[]``: the array emptied).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from proxy.core.jsonpaths import ANY, EACH, KEY, JsonPath


def remove(value: object, path: JsonPath) -> int:
    """Remove what ``path`` reaches in ``value`` (as from ``orjson.loads``, edited in place);
    how many places were removed. Type mismatches are skipped, so this never raises."""
    steps = path.steps
    last = len(steps) - 1
    removed = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, i = stack.pop()
        kind, key = steps[i]
        if kind == KEY:
            if not isinstance(node, dict) or key not in node:
                continue
            if i < last:
                stack.append((node[key], i + 1))
            else:
                del node[key]
                removed += 1
        elif kind == ANY and isinstance(node, dict):
            if i < last:
                stack.extend((child, i + 1) for child in node.values())
            else:
                removed += len(node)
                node.clear()
        elif kind == EACH and isinstance(node, list):
            if i < last:
                stack.extend((child, i + 1) for child in node)
            else:
                removed += len(node)
                node.clear()
    return removed


def remove_paths(decoded: bytes, paths: Sequence[JsonPath]) -> bytes | None:
    """The JSON text without what ``paths`` reach; None when nothing was there or the body is
    not JSON."""
    try:
        value = orjson.loads(decoded)
    except orjson.JSONDecodeError:
        return None
    removed = sum(remove(value, path) for path in paths)
    return orjson.dumps(value) if removed else None
