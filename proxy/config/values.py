"""How config keys and values are written in messages: ``traffic.weights.green``, ``[0]``,
and a value as the user wrote it, near enough."""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

_PLAIN_KEY = re.compile(r"[\w-]+")
ZERO = dt.timedelta(0)


def dotted(*path: str | int) -> str:
    """``traffic.weights.green``; list indexes ``[0]``; odd keys quoted: ``pins['a b']``."""
    text = ""
    for key in path:
        if isinstance(key, int) or not _PLAIN_KEY.fullmatch(key):
            text += f"[{key!r}]"
        else:
            text += f".{key}" if text else key
    return text


def show(value: Any) -> str:
    """A value as the user wrote it, near enough: YAML words for null/booleans, short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, int) and value.bit_length() > 256:  # str() of 4300+ digits raises
        return f"an integer of about {math.floor(math.log10(abs(value))) + 1} digits"
    if isinstance(value, dt.datetime) and value.time() == dt.time() and value.utcoffset() == ZERO:
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        text = "[" + ", ".join(show(item) for item in value[:20]) + "]"
    elif isinstance(value, dict):
        items = list(value.items())[:20]
        text = "{" + ", ".join(f"{dotted(str(k))}: {show(v)}" for k, v in items) + "}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
