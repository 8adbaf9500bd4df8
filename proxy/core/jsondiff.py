"""The structural difference between two JSON answers: what an old client would notice.

``diff(stable, candidate, ignore, values)`` compares two parsed JSON values and returns each
difference once, by JSON path in the syntax of ``proxy.core.jsonpaths`` (``user.role``,
``items[].id``; array elements share one path, ``[]``):

    field_removed    a key the stable answer has is missing from the candidate's
    type_changed     a value of another JSON type (null, boolean, number, string)
    array_to_object  an array became an object
    object_to_array  an object became an array
    field_added      a key only the candidate has (compatible: old clients ignore it)
    value_changed    the same type, another value (only with ``values``: off by default)

Arrays are compared element by element up to the shorter length (their lengths are values).
Under a removed, added or retyped value nothing more is reported: the one difference says it.
A difference at or under a path of ``ignore`` (``*`` stands for any key) is skipped. At most
``MAX_DIFFERENCES`` are returned, so an answer of any size costs bounded memory downstream.

Pure: no I/O. The root value's path is the empty string (``ROOT`` in reports).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import NamedTuple

from proxy.core.jsonpaths import ANY, EACH, KEY, JsonPath
from proxy.core.jsonpaths import Step as PathStep

FIELD_REMOVED = "field_removed"
TYPE_CHANGED = "type_changed"
ARRAY_TO_OBJECT = "array_to_object"
OBJECT_TO_ARRAY = "object_to_array"
FIELD_ADDED = "field_added"
VALUE_CHANGED = "value_changed"
STATUS_CHANGED = "status_changed"  # not found by ``diff``: the caller compares statuses
KINDS = (
    STATUS_CHANGED,
    FIELD_REMOVED,
    TYPE_CHANGED,
    ARRAY_TO_OBJECT,
    OBJECT_TO_ARRAY,
    FIELD_ADDED,
    VALUE_CHANGED,
)
COMPATIBLE = frozenset({FIELD_ADDED})
ROOT = "(body)"
MAX_DIFFERENCES = 100

Steps = tuple[PathStep, ...]
_SPECIAL = frozenset('.[]*"\\')


class Difference(NamedTuple):
    path: str  # "" for the root value
    kind: str  # one of KINDS


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def path_text(steps: Steps) -> str:
    """The path as ``proxy.core.jsonpaths.parse_path`` reads it back."""
    out: list[str] = []
    for kind, name in steps:
        if kind == EACH:
            out.append("[]")
            continue
        if out:
            out.append(".")
        if name and not (_SPECIAL & set(name)):
            out.append(name)
        else:
            out.append('"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "".join(out)


def ignored(steps: Steps, ignore: Sequence[JsonPath]) -> bool:
    """Whether ``steps`` is at or under one of ``ignore``."""
    return any(covers(path.steps, steps) for path in ignore)


def covers(prefix: Steps, steps: Steps) -> bool:
    if len(prefix) > len(steps):
        return False
    for (pkind, pname), (kind, name) in zip(prefix, steps, strict=False):
        if pkind == ANY and kind == KEY:
            continue
        if pkind != kind or pname != name:
            return False
    return True


def diff(
    stable: object, candidate: object, ignore: Sequence[JsonPath] = (), values: bool = False
) -> list[Difference]:
    """Each difference once, in the order first found, at most ``MAX_DIFFERENCES``."""
    seen: dict[Difference, None] = {}
    for steps, kind in _walk(stable, candidate, (), values):
        if ignore and ignored(steps, ignore):
            continue
        seen.setdefault(Difference(path_text(steps), kind))
        if len(seen) >= MAX_DIFFERENCES:
            break
    return list(seen)


def _walk(a: object, b: object, at: Steps, values: bool) -> Iterator[tuple[Steps, str]]:
    ta, tb = json_type(a), json_type(b)
    if ta != tb:
        if (ta, tb) == ("array", "object"):
            yield at, ARRAY_TO_OBJECT
        elif (ta, tb) == ("object", "array"):
            yield at, OBJECT_TO_ARRAY
        else:
            yield at, TYPE_CHANGED
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key, value in a.items():
            here = (*at, (KEY, str(key)))
            if key in b:
                yield from _walk(value, b[key], here, values)
            else:
                yield here, FIELD_REMOVED
        for key in b:
            if key not in a:
                yield (*at, (KEY, str(key))), FIELD_ADDED
    elif isinstance(a, list) and isinstance(b, list):
        here = (*at, (EACH, ""))
        for x, y in zip(a, b, strict=False):
            yield from _walk(x, y, here, values)
    elif values and a != b:
        yield at, VALUE_CHANGED
