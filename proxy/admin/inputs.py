"""What the admin API reads from a request: JSON bodies and query values, by shape and type.

Each function returns the value or raises ``InvalidInput`` naming the key and the value, which
the API answers with a 400.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import orjson
from aiohttp import web

from proxy.errors import InvalidInput


async def read_object(request: web.Request, *, required: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise InvalidInput("request body: expected a JSON object")
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"request body: expected a JSON object, got {show(data)}")
    return data


def no_unknown_keys(body: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(body) - known)
    if unknown:
        expected = ", ".join(sorted(known))
        raise InvalidInput(f"{unknown[0]}: unknown key (expected one of: {expected})")


def show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "..."


def number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{path}: {show(value)} is not a number")
    return float(value)


def positive(key: str, raw: str, maximum: int) -> int:
    """A query value that must be a whole number from 1 to ``maximum``."""
    if not (raw.isascii() and raw.isdigit() and int(raw) > 0):
        raise InvalidInput(f"{key}: {show(raw)} is not a positive whole number")
    if int(raw) > maximum:  # beyond what the report or SQLite can take: bad input, not a 500
        raise InvalidInput(f"{key}: {show(raw)} is more than {maximum}")
    return int(raw)


def since_time(value: Any) -> float | None:
    """``since``: unix seconds, or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            seconds = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(seconds):  # "nan", "inf": floats, but no time
                raise InvalidInput(f"since: {show(value)} is not a time (unix seconds or ISO 8601)")
            return seconds
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidInput(
                f"since: {show(value)} is not a time (unix seconds or ISO 8601)"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return when.timestamp()
    return number("since", value)


def whole(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{path}: {show(value)} is not a whole number")
    return value


def flag(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{path}: {show(value)} is not true or false")
    return value


def numbers(path: str, value: Any) -> list[float]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(f"{path}: {show(value)} is not a list of numbers")
    return [number(f"{path}[{i}]", item) for i, item in enumerate(value)]
