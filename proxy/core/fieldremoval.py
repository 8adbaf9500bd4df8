"""Removing sunset response fields from a JSON body, and encoding the result for the client.

Pure (no I/O): ``remove_paths`` takes the decompressed body and the paths to remove (as
``proxy.core.jsonpaths`` parses them) and returns the new JSON text, or None when nothing was
removed (the body goes out as it came, byte for byte) or the body does not parse.
A path's last step says what goes: a key (``user.role``: the key ``role`` of ``user``), every
key (``meta.*``: the object emptied) or every element (``tags[]``: the array emptied).

``encode_for`` compresses the new text as the app had encoded the original when the client
accepts that coding (one of gzip, deflate, br), and otherwise sends it as identity.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Sequence

import brotli
import orjson

from proxy.core.jsonpaths import ANY, EACH, KEY, JsonPath


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def _brotli(data: bytes) -> bytes:
    out: bytes = brotli.compress(data, quality=5)
    return out


_ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": lambda data: zlib.compress(data, 6),
    "br": _brotli,
}


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


def encode_for(
    body: bytes, content_encoding: bytes | None, accept_encoding: bytes | None
) -> tuple[bytes, bytes | None]:
    """``body`` (identity) encoded as ``content_encoding`` was, if that is a single coding this
    module knows and the client's Accept-Encoding names it; else ``body`` as identity (None)."""
    if content_encoding is None:
        return body, None
    coding = content_encoding.decode("latin-1").strip().lower()
    encoder = _ENCODERS.get(coding)
    if encoder is None or not accepts(accept_encoding, coding):
        return body, None
    return encoder(body), content_encoding.strip()


def accepts(accept_encoding: bytes | None, coding: str) -> bool:
    """Whether an Accept-Encoding value names ``coding`` (or ``*``) with a weight above 0."""
    if not accept_encoding:
        return False
    for item in accept_encoding.decode("latin-1").lower().split(","):
        name, _, params = item.partition(";")
        if name.strip() not in (coding, "*"):
            continue
        q = params.strip()
        if q.startswith("q="):
            try:
                return float(q[2:]) > 0
            except ValueError:
                return False
        return True
    return False
