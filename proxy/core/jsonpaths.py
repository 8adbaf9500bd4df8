"""JSON paths naming deprecated fields, and how often a parsed JSON value contains them.

Grammar (positions in error messages count characters from 0):

    path     = segment *( "." segment )
    segment  = ( name / quoted / "*" / "" ) *( "[]" )     ; not empty as a whole
    name     = 1*( any character except . [ ] * ), not starting with DQUOTE
    quoted   = DQUOTE *( any character except DQUOTE and "\\" / "\\" any ) DQUOTE

``name`` and ``quoted`` select one key of an object; ``*`` every key of an object; each ``[]``
every element of an array. Examples: ``user.role``, ``items[].role``, ``data[][].id``,
``meta.*.deprecated``, ``[].id`` (a top-level array), ``"a.b".c`` (a key containing a dot).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import orjson

from proxy.core.bytesearch import SLASH_ESCAPE, contains, has_escape

KEY = 0  # one named key of an object
ANY = 1  # every key of an object
EACH = 2  # every element of an array

Step = tuple[int, str]  # (KEY, name) | (ANY, "") | (EACH, "")

_NAME_STOP = frozenset(".[]*")


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path. ``text`` is the path as configured (the metric label)."""

    text: str
    steps: tuple[Step, ...]
    _names: frozenset[bytes] = field(repr=False, compare=False)
    _slashed: bool = field(repr=False, compare=False)  # some key contains "/"

    def __str__(self) -> str:
        return self.text

    def key_names(self) -> frozenset[bytes]:
        """The literal keys as orjson encodes them, quotes included: ``b'"role"'``."""
        return self._names

    def may_occur_in(self, raw: bytes, escaped: bool) -> bool:
        """False only when the JSON text ``raw`` certainly does not contain this path.

        Every literal key of the path must occur in ``raw``, spelled as orjson spells it. A
        sender may spell a key differently only with escapes: ``\\uXXXX`` for any character
        (``escaped`` says whether ``raw`` contains ``b"\\\\u"``; the caller scans once for all
        paths) or ``\\/`` for ``/``. Those bodies always pass, so the prefilter never misses.
        """
        if escaped:
            return True
        for name in self._names:
            if not contains(raw, name):
                return self._slashed and has_escape(raw, SLASH_ESCAPE)
        return True


def parse_path(text: str) -> JsonPath:
    """Parse ``text``; ``ValueError("... at position N")`` when it is not a path."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"unencodable character at position {err.start}") from None
    if not text:
        raise ValueError("empty path at position 0")
    if "\x00" in text:  # no JSON API names a field so, and simdjson's look-up would stop there
        raise ValueError(f"NUL character at position {text.index(chr(0))}")
    steps: list[Step] = []
    n = len(text)
    i = 0
    while True:
        start = i
        if i < n and text[i] == '"':
            name, i = _quoted(text, i)
            steps.append((KEY, name))
        elif i < n and text[i] == "*":
            steps.append((ANY, ""))
            i += 1
        else:
            j = i
            while j < n and text[j] not in _NAME_STOP:
                j += 1
            if j > i:
                steps.append((KEY, text[i:j]))
            i = j
        while text.startswith("[]", i):
            steps.append((EACH, ""))
            i += 2
        if i == start:
            raise ValueError(f"empty segment at position {i}")
        if i == n:
            break
        if text[i] != ".":
            raise ValueError(f"unexpected {text[i]!r} at position {i}")
        i += 1
    return path_of(text, steps)


def path_of(text: str, steps: Sequence[Step]) -> JsonPath:
    """The path of ``steps`` (parsed already; ``text`` is its label)."""
    names = frozenset(orjson.dumps(name) for kind, name in steps if kind == KEY)
    slashed = any(kind == KEY and "/" in name for kind, name in steps)
    return JsonPath(text, tuple(steps), names, slashed)


def _quoted(text: str, start: int) -> tuple[str, int]:
    """The key of the quoted name opening at ``start``, and the index after its closing quote."""
    chars: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(chars), i + 1
        if c == "\\":
            i += 1
            if i == n:
                break
            c = text[i]
        chars.append(c)
        i += 1
    raise ValueError(f"unterminated quoted key at position {start}")


def find(value: object, path: JsonPath, limit: int = 0) -> int:
    """How many places in ``value`` (as from ``orjson.loads``) the path reaches.

    A present key counts even when its value is null: the field was sent. Type mismatches do not
    match, so this never raises. The walk is iterative (an explicit stack), so depth costs no
    Python frames. With ``limit`` > 0 the count stops at ``limit`` (``limit=1``: "is it there").
    """
    steps = path.steps
    last = len(steps) - 1
    count = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, i = stack.pop()
        kind, key = steps[i]
        if kind == KEY:
            if not isinstance(node, dict) or key not in node:
                continue
            if i < last:
                stack.append((node[key], i + 1))
                continue
            count += 1
        else:
            if kind == ANY:
                if not isinstance(node, dict):
                    continue
                children: Collection[object] = node.values()
            elif isinstance(node, list):
                children = node
            else:
                continue
            if i < last:
                stack.extend((child, i + 1) for child in children)
                continue
            count += len(children)
        if 0 < limit <= count:
            return limit
    return count
