"""Records turned into log lines: text (a terminal), JSON lines or logfmt. Pure.

A record is what the request path or the ``logging`` handler left: an ``AccessLine`` (the access
log's step fills it in the form the JSON line shows), ``Encoded`` lines (a batch of access lines
the step encoded itself, where the format can in one call: ``Format.access_lines``) or a ``LOG``
tuple. The writer thread formats a batch of records at a time (``Format.lines``).
Every line is one line: a request target is shown as printable ASCII with every other byte (and
``"``, ``\\``, space) as ``\\xNN``, and any other string that needs it is quoted JSON-style, so
no CR, LF or quote from a client can start a line or a field of its own. Only the text format
lets a traceback run on over indented lines, as a terminal reader expects.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgspec
import orjson

from proxy.logs.values import IsoTimes

LOG = 1
# (LOG, wall time, level name, logger name, message, event or None, fields or None, traceback)
LogRecord = tuple[Any, ...]


class AccessLine(msgspec.Struct, gc=False):
    """One finished exchange, field for field the JSON line (its order, its names)."""

    time: str  # ISO 8601, UTC, to the millisecond (``IsoTimes``)
    type: str  # "access"
    peer: str
    client: str
    release: str
    method: str
    target: str  # printable ASCII (``proxy.logs.values.safe_target``)
    status: int
    duration_ms: float
    bytes_in: int
    bytes_out: int
    deprecated: tuple[str, ...]  # the ids of the deprecated elements used or sent, first seen first
    outcome: str


class Encoded(NamedTuple):
    """Access lines already in the log's format: ``lines`` of them, ``data`` their bytes."""

    lines: int
    data: bytes


Shown = AccessLine | LogRecord  # what a format turns into a line
Record = Shown | Encoded

_PLAIN = re.compile(r"[^\s\"\\=\x00-\x1f\x7f\u2028\u2029]+")
_RESERVED_JSON = frozenset({"time", "type", "level", "logger", "event", "msg", "exc"})
_ENCODER = msgspec.json.Encoder()


def quote(value: str) -> str:
    """``value`` bare when it is one plain word, else as a JSON string (escapes included)."""
    if _PLAIN.fullmatch(value):
        return value
    return orjson.dumps(value).decode()


_iso = IsoTimes()  # the writer thread's (``LOG`` records carry the time as a float)


def deprecated_ids(found: Any) -> tuple[str, ...]:
    """The ids of the deprecated elements an exchange used or was sent, first seen first."""
    if found is None:
        return ()
    seen: dict[str, None] = {}
    for rule in (*found.used, *found.exposed):
        seen[rule.id] = None
    return tuple(seen)


def _value(v: Any) -> str:
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return f"{v:g}" if isinstance(v, float) else str(v)
    if v is None:
        return "null"
    if isinstance(v, list | tuple):
        return quote(",".join(str(x) for x in v))
    return quote(str(v))


def _pairs(fields: Iterable[tuple[str, Any]]) -> str:
    return " ".join(f"{k}={_value(v)}" for k, v in fields)


# -- JSON lines ---------------------------------------------------------------------------------
def json_line(r: Shown) -> bytes:
    if isinstance(r, AccessLine):
        return _ENCODER.encode(r) + b"\n"
    _, t, level, logger, msg, event, fields, exc = r
    out: dict[str, Any] = {"time": _iso(t), "type": "event" if event else "log"}
    out["level"] = level.lower()
    out["logger"] = logger
    if event:
        out["event"] = event
    out["msg"] = msg
    for key, value in (fields or {}).items():
        if key not in _RESERVED_JSON:
            out[key] = value
    if exc:
        out["exc"] = exc
    return orjson.dumps(out, default=str) + b"\n"


def json_lines(records: list[Record]) -> bytes:
    """The lines of ``records``: each run of access lines in one call of the encoder."""
    parts: list[bytes] = []
    run: list[AccessLine] = []
    for r in records:
        if type(r) is AccessLine:
            run.append(r)
            continue
        if run:
            parts.append(_ENCODER.encode_lines(run))
            run = []
        parts.append(r.data if type(r) is Encoded else json_line(r))
    if not parts:
        return _ENCODER.encode_lines(run)
    if run:
        parts.append(_ENCODER.encode_lines(run))
    return b"".join(parts)


# -- logfmt -------------------------------------------------------------------------------------
def logfmt_line(r: Shown) -> bytes:
    if isinstance(r, AccessLine):
        return (
            f"time={r.time} type=access peer={quote(r.peer)} client={quote(r.client)} "
            f"release={quote(r.release)} method={r.method} target={quote(r.target)} "
            f"status={r.status} duration_ms={r.duration_ms} bytes_in={r.bytes_in} "
            f"bytes_out={r.bytes_out} deprecated={quote(','.join(r.deprecated))} "
            f"outcome={r.outcome}\n"
        ).encode()
    _, t, level, logger, msg, event, fields, exc = r
    pairs: list[tuple[str, Any]] = [
        ("time", _iso(t)),
        ("type", "event" if event else "log"),
        ("level", level.lower()),
        ("logger", logger),
    ]
    if event:
        pairs.append(("event", event))
    pairs.append(("msg", msg))
    pairs.extend((k, v) for k, v in (fields or {}).items() if _PLAIN.fullmatch(k))
    if exc:
        pairs.append(("exc", exc))
    return (_pairs(pairs) + "\n").encode()


# -- text: for a terminal -----------------------------------------------------------------------
def text_line(r: Shown) -> bytes:
    if isinstance(r, AccessLine):
        deprecated = f" deprecated={','.join(r.deprecated)}" if r.deprecated else ""
        return (
            f"{r.time} access {quote(r.peer)} {quote(r.client)} {r.release or '-'} "
            f"{r.method} {r.target} {r.status} {r.duration_ms}ms "
            f"in={r.bytes_in} out={r.bytes_out}{deprecated} {r.outcome}\n"
        ).encode()
    _, t, level, logger, msg, event, fields, exc = r
    safe_msg = msg.replace("\r", "\\r").replace("\n", "\\n")
    line = f"{_iso(t)} {level} {logger}: {safe_msg}"
    if event:
        line += f" [{_pairs([('event', event), *(fields or {}).items()])}]"
    if exc:
        line += "\n" + "\n".join("    " + part for part in exc.splitlines())
    return (line + "\n").encode()


class Format(NamedTuple):
    """A format's line for one record, the lines of a batch (what the writer calls), and the
    lines of a batch of access lines in one call where the format has such an encoder."""

    line: Callable[[Record], bytes]
    lines: Callable[[list[Record]], bytes]
    access_lines: Callable[[list[AccessLine]], bytes] | None = None


def _format(line: Callable[[Shown], bytes]) -> Format:
    """A format whose batch is its lines one by one. An ``Encoded`` batch is passed as it is,
    whatever the format: a reload may change the format while a batch waits."""

    def any_line(r: Record) -> bytes:
        return r.data if isinstance(r, Encoded) else line(r)

    return Format(any_line, lambda records: b"".join([any_line(r) for r in records]))


FORMATS: dict[str, Format] = {
    "text": _format(text_line),
    "json": _format(json_line)._replace(lines=json_lines, access_lines=_ENCODER.encode_lines),
    "logfmt": _format(logfmt_line),
}
