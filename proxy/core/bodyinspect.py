"""What of a body can be inspected for deprecated fields: JSON only, decompressed, bounded.

The body forwarded to the client is never touched; inspection works on ``decoded_copy``. When a
body is not inspected, the reason is a metric label value (``switchback_inspection_skipped``):

    not_json    the Content-Type is not application/json or application/*+json
    too_large   the body, or what it decompresses to, exceeds the size cap (or it holds more
                than ``MAX_GZIP_MEMBERS`` gzip members)
    malformed   corrupt or truncated compressed data, or JSON that does not parse
    encoding    a Content-Encoding this module cannot decode (compress, zstd, ...)

Decompression is bounded: zlib produces at most ``cap + 1`` bytes per coding, brotli stops within
about twice that (its output buffer grows by doubling), so a decompression bomb costs about as
much memory as a body at the cap. Its time is bounded too: zlib copies the input a stream did
not use when the stream ends, so each gzip member is given its input in windows that double
from ``_WINDOW`` bytes (not the whole rest of the body), and a body of more than
``MAX_GZIP_MEMBERS`` members is not inspected.

The other way: a step that rewrites a body (field selection, a sunset field removed) sends it
in the app's coding when the client accepts it (``encode_for``), else as identity.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from typing import Final

import brotli

NOT_JSON: Final = "not_json"
TOO_LARGE: Final = "too_large"
MALFORMED: Final = "malformed"
ENCODING: Final = "encoding"
SKIP_REASONS: Final = (NOT_JSON, TOO_LARGE, MALFORMED, ENCODING)

_GZIP_MAGIC = b"\x1f\x8b"
_WINDOW = 1024  # the first window of input for a stream; it doubles while the stream goes on
# gzip members in one body: one is the rule (a writer that flushes may make a few). Each costs a
# decompressor and a few calls, so a body of 150,000 empty members held the loop for seconds.
MAX_GZIP_MEMBERS = 1000
_BROTLI_FALLBACK_CHUNK = 4096  # brotli < 1.2 has no output limit: feed input in small pieces


def is_json_content_type(value: bytes | None) -> bool:
    """``application/json`` or ``application/*+json``, any case, parameters ignored."""
    if value == b"application/json":  # what most APIs send: no parsing
        return True
    if not value:
        return False
    kind, slash, subtype = value.partition(b";")[0].strip().lower().partition(b"/")
    if kind != b"application" or not slash:
        return False
    return subtype == b"json" or (subtype.endswith(b"+json") and len(subtype) > 5)


def decoded_copy(body: bytes, content_encoding: bytes | None, cap: int) -> bytes | str:
    """The decompressed body, or a skip reason: "too_large", "encoding" or "malformed".

    ``content_encoding`` lists the codings in the order they were applied (``gzip, br``: gzip
    first), so they are undone from the last. Never raises, whatever the bytes.
    """
    if len(body) > cap:
        return TOO_LARGE
    if not content_encoding:  # most bodies: nothing to undo
        return body
    codings = content_encoding.decode("latin-1").split(",")
    data = body
    for coding in reversed(codings):
        name = coding.strip().lower()
        if name in ("", "identity"):
            continue
        decode = _DECODERS.get(name)
        if decode is None:
            return ENCODING
        result = decode(data, cap)
        if isinstance(result, str):
            return result
        data = result
    return data


def _inflate(data: bytes, start: int, wbits: int, cap: int) -> tuple[bytes | str, int]:
    """One zlib/gzip/raw deflate stream from offset ``start``: (output or reason, the offset
    after the stream)."""
    stream = zlib.decompressobj(wbits)
    view = memoryview(data)
    parts: list[bytes] = []
    size = 0
    pos = start
    window = _WINDOW
    try:
        while True:
            piece = view[pos : pos + window]
            if not piece:  # all input consumed without reaching the end: truncated
                return MALFORMED, pos
            out = stream.decompress(piece, cap + 1 - size)  # never 0, which has no limit
            parts.append(out)
            size += len(out)
            if size > cap:
                return TOO_LARGE, pos
            if stream.eof:
                return b"".join(parts), pos + len(piece) - len(stream.unused_data)
            pos += len(piece)
            window *= 2
    except zlib.error:
        return MALFORMED, pos


def _gunzip(data: bytes, cap: int) -> bytes | str:
    """gzip, including several members one after the other (as ``gzip.decompress`` reads)."""
    parts: list[bytes] = []
    size = 0
    pos = 0
    while True:
        out, pos = _inflate(data, pos, 16 + zlib.MAX_WBITS, cap - size)
        if isinstance(out, str):
            return out
        parts.append(out)
        size += len(out)
        if pos >= len(data):
            return b"".join(parts)
        if not data.startswith(_GZIP_MAGIC, pos):
            return MALFORMED
        if len(parts) >= MAX_GZIP_MEMBERS:
            return TOO_LARGE


def _undeflate(data: bytes, cap: int) -> bytes | str:
    """HTTP "deflate" is zlib-wrapped (RFC 9110), but some servers send raw deflate: try both."""
    out, end = _inflate(data, 0, zlib.MAX_WBITS, cap)
    if out == MALFORMED:
        out, end = _inflate(data, 0, -zlib.MAX_WBITS, cap)
    if isinstance(out, str):
        return out
    return MALFORMED if end < len(data) else out


def _probe_output_limit() -> bool:
    try:
        brotli.Decompressor().process(b"", output_buffer_limit=1)
    except TypeError:
        return False
    except brotli.error:
        pass
    return True


_BROTLI_LIMIT = _probe_output_limit()


def _unbrotli(data: bytes, cap: int) -> bytes | str:
    stream = brotli.Decompressor()
    parts: list[bytes] = []
    size = 0
    try:
        if _BROTLI_LIMIT:
            out = stream.process(data, output_buffer_limit=cap + 1)
            while True:
                parts.append(out)
                size += len(out)
                if size > cap:
                    return TOO_LARGE
                if stream.is_finished() or stream.can_accept_more_data():
                    break
                out = stream.process(b"", output_buffer_limit=cap + 1 - size)
        else:  # pragma: no cover - brotli < 1.2: bounded input per step, output checked after
            for at in range(0, len(data), _BROTLI_FALLBACK_CHUNK):
                out = stream.process(data[at : at + _BROTLI_FALLBACK_CHUNK])
                parts.append(out)
                size += len(out)
                if size > cap:
                    return TOO_LARGE
    except brotli.error:
        return MALFORMED
    if not stream.is_finished():
        return MALFORMED
    return b"".join(parts)


_DECODERS: dict[str, Callable[[bytes, int], bytes | str]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _undeflate,
    "br": _unbrotli,
}


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


def encode_for(
    body: bytes, content_encoding: bytes | None, accept_encoding: bytes | None
) -> tuple[bytes, bytes | None]:
    """``body`` (identity) encoded as ``content_encoding`` was, if that is a single coding this
    module knows and the client's Accept-Encoding names it; else ``body`` as identity (None)."""
    if content_encoding is None:
        return body, None
    coding = content_encoding.decode("latin-1").strip().lower()
    encoder = _ENCODERS.get(coding)
    if encoder is None or not accepts(accept_encoding, coding.encode("latin-1")):
        return body, None
    return encoder(body), content_encoding.strip()


def accepts(accept_encoding: bytes | None, coding: bytes) -> bool:
    """Whether a request's ``Accept-Encoding`` allows ``coding`` (RFC 9110 section 12.5.3):
    named, or ``*``, with a q-value above 0. No header: any coding (and identity) is allowed,
    but a proxy should not compress for a client that did not ask, so this answers False."""
    if not accept_encoding:
        return False
    star = False
    for item in accept_encoding.lower().split(b","):
        name, _, params = item.partition(b";")
        name = name.strip()
        q = _q(params)
        if name == coding:
            return q > 0
        if name == b"*":
            star = q > 0
    return star


def _q(params: bytes) -> float:
    for param in params.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.strip() == b"q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0
