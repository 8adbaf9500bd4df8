"""Records turned into log lines: text (a terminal), JSON lines or logfmt. Pure.

A record is a tuple, as the request path or the ``logging`` handler left it (``ACCESS`` or
``LOG`` first); the writer thread formats it, so the request path never builds text.
Every line is one line: a request target is shown as printable ASCII with every other byte (and
``"``, ``\\``, space) as ``\\xNN``, and any other string that needs it is quoted JSON-style, so
no CR, LF or quote from a client can start a line or a field of its own. Only the text format
lets a traceback run on over indented lines, as a terminal reader expects.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

ACCESS = 0
LOG = 1
# (ACCESS, wall time, peer, client, release, method, target, status, seconds, bytes in,
#  bytes out, deprecation finding or None, outcome)
# (LOG, wall time, level name, logger name, message, event or None, fields or None, traceback)
Record = tuple[Any, ...]

_SAFE = bytes(b for b in range(0x21, 0x7F) if b not in b'"\\')
_PLAIN = re.compile(r"[^\s\"\\=\x00-\x1f\x7f\u2028\u2029]+")
_RESERVED_JSON = frozenset({"time", "type", "level", "logger", "event", "msg", "exc"})


def safe_target(target: bytes) -> str:
    """``target`` as printable ASCII, losslessly: any other byte, ``"``, ``\\`` as ``\\xNN``."""
    if not target.translate(None, _SAFE):
        return target.decode("ascii")
    return "".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in target)


def quote(value: str) -> str:
    """``value`` bare when it is one plain word, else as a JSON string (escapes included)."""
    if _PLAIN.fullmatch(value):
        return value
    return orjson.dumps(value).decode()


_second: list[Any] = [-1, ""]  # the last whole second formatted, and its text (one writer)


def _iso(t: float) -> str:
    whole = int(t)
    if whole != _second[0]:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((t - whole) * 1000):03d}Z"


def deprecated_ids(found: Any) -> list[str]:
    """The ids of the deprecated elements an exchange used or was sent, first seen first."""
    if found is None:
        return []
    seen: dict[str, None] = {}
    for rule in (*found.used, *found.exposed):
        seen[rule.id] = None
    return list(seen)


def _access_fields(r: Record) -> dict[str, Any]:
    return {
        "peer": r[2],
        "client": r[3],
        "release": r[4],
        "method": r[5],
        "target": safe_target(r[6]),
        "status": r[7],
        "duration_ms": round(r[8] * 1000.0, 3),
        "bytes_in": r[9],
        "bytes_out": r[10],
        "deprecated": deprecated_ids(r[11]) if r[11] is not None else [],
        "outcome": r[12],
    }


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
def json_line(r: Record) -> bytes:
    if r[0] == ACCESS:  # the access log's format in production: one dict, one call
        target = r[6]
        return orjson.dumps(
            {
                "time": _iso(r[1]),
                "type": "access",
                "peer": r[2],
                "client": r[3],
                "release": r[4],
                "method": r[5],
                "target": target.decode()
                if not target.translate(None, _SAFE)
                else safe_target(target),
                "status": r[7],
                "duration_ms": round(r[8] * 1000.0, 3),
                "bytes_in": r[9],
                "bytes_out": r[10],
                "deprecated": deprecated_ids(r[11]) if r[11] is not None else [],
                "outcome": r[12],
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
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


# -- logfmt -------------------------------------------------------------------------------------
def logfmt_line(r: Record) -> bytes:
    if r[0] == ACCESS:
        deprecated = ",".join(deprecated_ids(r[11])) if r[11] is not None else ""
        return (
            f"time={_iso(r[1])} type=access peer={quote(r[2])} client={quote(r[3])} "
            f"release={quote(r[4])} method={r[5]} target={quote(safe_target(r[6]))} "
            f"status={r[7]} duration_ms={round(r[8] * 1000.0, 3)} bytes_in={r[9]} "
            f"bytes_out={r[10]} deprecated={quote(deprecated)} outcome={r[12]}\n"
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
def text_line(r: Record) -> bytes:
    if r[0] == ACCESS:
        f = _access_fields(r)
        deprecated = f" deprecated={','.join(f['deprecated'])}" if f["deprecated"] else ""
        line = (
            f"{_iso(r[1])} access {quote(f['peer'])} {quote(f['client'])} {f['release'] or '-'} "
            f"{f['method']} {f['target']} {f['status']} {f['duration_ms']}ms "
            f"in={f['bytes_in']} out={f['bytes_out']}{deprecated} {f['outcome']}\n"
        )
        return line.encode()
    _, t, level, logger, msg, event, fields, exc = r
    safe_msg = msg.replace("\r", "\\r").replace("\n", "\\n")
    line = f"{_iso(t)} {level} {logger}: {safe_msg}"
    if event:
        line += f" [{_pairs([('event', event), *(fields or {}).items()])}]"
    if exc:
        line += "\n" + "\n".join("    " + part for part in exc.splitlines())
    return (line + "\n").encode()


FORMATTERS: dict[str, Callable[[Record], bytes]] = {
    "text": text_line,
    "json": json_line,
    "logfmt": logfmt_line,
}
