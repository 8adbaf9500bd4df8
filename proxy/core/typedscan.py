"""Finding JSON paths in a body with a msgspec decoder generated from the paths.

For a set of paths, one decoder is generated whose types hold only what the paths name: a key
becomes a Struct field (``rename`` gives it its JSON name; a key msgspec cannot take as one,
with a quote, a backslash or a control character, makes that object a ``dict``), ``[]`` a
``list``, ``*`` a ``dict``, and the value a path ends on a ``msgspec.Raw`` (never parsed).
Paths share one tree, so each body is decoded once. msgspec validates the whole text in C and
skips every other key without building it: an array of 1,000 objects that lack the key costs
1,000 small Structs allocated in C with no field set. The walk then reads the decoded tree
with C iterators (``filter``, ``map``, ``chain``) and stops at the first hit; a run of empty
Structs is skipped by one C-level count (``operator.countOf``), so no Python code runs per
element. The Structs are not tracked by the cyclic collector (``gc=False``: decoded data has
no cycles), so a call allocates only a few tracked objects (the lists and dicts on the paths).

Most list bodies lack the key a rule looks for in their elements, and the Structs cost most of
such a decode (one allocated, compared and freed per element). So a body is first decoded
*skimmed*: with every value a path spreads over (``[]``, ``*``) left as ``Raw``, validated in
the same pass but with no Struct per element. A path whose value is there is then decided by
its bytes: when one of the keys after the spread does not occur in them as JSON spells it
(``JsonPath.may_occur_in``, which lets through the escapes that could spell a key otherwise),
the path is not there. Only when every such key occurs (a hit, or a key elsewhere in the
elements) is the body decoded in full, and the next ``SKIM_BACKOFF`` bodies go straight to
the full decode, so a route whose lists hold the key pays for one skim in that many. The key
search is ``proxy.core.bytesearch``. A body under ``SKIM_FROM`` bytes is decoded in full at
once: a few Structs cost less than the skim.

A set of paths that name keys alone (``user.role``) stays with the simdjson scanner: looking
up a few keys costs it nothing per element, and its parse is faster than msgspec's skipping
(``needs_types``).

Every type along a path also accepts the other shapes a value can have (null, a scalar, an
object where an array was expected and the reverse), so a type mismatch along a path decodes
as "not there", which is what ``jsonpaths.find`` answers, instead of failing the decode.

Validation stays simdjson's: a body msgspec refuses (malformed, a byte-order mark, nesting
past Python's recursion limit, a number msgspec cannot hold where a path goes) is handed to the
simdjson scanner (``fieldscan``), which decides as before; invalid UTF-8, which msgspec does
not check in the text it skips, is refused first. Three differences remain where this decoder
answers (the tests name them):

- a number past 64-bit integers or doubles where no path goes is read as the valid JSON it
  is; simdjson refused the whole body as malformed, so none of its fields was counted;
- a number msgspec cannot hold (``1e400``) inside an array or ``*`` value whose bytes lack
  a key the path needs there is valid JSON the skim reads past; where those bytes hold the
  keys, the full decode refuses the body as before;
- a key repeated in one object counts by its last occurrence, as a full parse (orjson,
  Python's ``json``, JavaScript's ``JSON.parse``) and ``jsonpaths.find`` on it read it;
  simdjson's look-up took the first. Neither reading counts more in general; finding both
  would need a second walk of every body whose keys repeat anywhere, the cost removed here.

Chosen by ``loadtest/inspection.py`` (us per call, best of 30, on the 2-core machine; rules
``user.role`` and ``items[].role``): 87 KB with 1,000 items none of which has ``role``, the
simdjson scanner 2,632, this decoder 130 (one typed by hand for the two rules: 135; msgspec's
validation alone: 69; ``orjson.loads`` and ``find``: 743; simdjson's parse as well, to keep
its verdict on every body: 176); every item with ``role``: 180 and 156; 1 KB (8 items) 23.5
and 2.5 without, 3.6 and 3.6 with; ``meta.*.deprecated`` over 1,000 values without it: 5,975
and 230; ``user.role`` alone at 87 KB: 44.8 and 74.7 (hence ``needs_types``). Young-generation
collections: 0.9 per call at 87 KB before, 1 per 1,000 calls now.
The skim, with the same script on 2026-12-02: 87 KB without the item key 167 -> 112 us,
``meta.*.deprecated`` over 1,000 values without it 406 -> 108, every item with the key 198 ->
193 (the full decode, after the back-off).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, repeat
from types import GenericAlias
from typing import Any, Union

import msgspec
from msgspec import UNSET, Raw

from proxy.core.bytesearch import UNICODE_ESCAPE, has_escape
from proxy.core.fieldscan import FieldScanner
from proxy.core.jsonpaths import ANY, EACH, KEY, JsonPath, Step, path_of

# An object where the paths need none: every key skipped in C; and such an array. Made by
# ``defstruct``, as the generated types are: a class statement would lose its options when
# this module is compiled (``proxy.http.native``).
_AnyObject = msgspec.defstruct("_AnyObject", [], gc=False)
_AnyArray = msgspec.defstruct("_AnyArray", [], array_like=True, gc=False)


# A value of any scalar kind, so a scalar where a path needs a container is "not there".
_SCALARS = (type(None), bool, int, float, str)
_present = partial(operator.is_not, UNSET)
_is_dict = dict.__instancecheck__
_is_list = list.__instancecheck__
_END = object()


class _Shape:
    """What the paths need of one value: keys, any key (``*``), every element (``[]``)."""

    __slots__ = ("keys", "any", "each")

    def __init__(self) -> None:
        self.keys: dict[str, _Shape] = {}
        self.any: _Shape | None = None
        self.each: _Shape | None = None

    def add(self, steps: Sequence[Step]) -> None:
        shape = self
        for kind, key in steps:
            if kind == KEY:
                shape = shape.keys.setdefault(key, _Shape())
            elif kind == ANY:
                shape.any = shape = shape.any or _Shape()
            else:
                shape.each = shape = shape.each or _Shape()

    def merge(self, other: _Shape) -> None:
        for key, child in other.keys.items():
            self.keys.setdefault(key, _Shape()).merge(child)
        if other.any is not None:
            self.any = self.any or _Shape()
            self.any.merge(other.any)
        if other.each is not None:
            self.each = self.each or _Shape()
            self.each.merge(other.each)


@dataclass(slots=True)
class _Node:
    """The type generated for one value, and how a walk reads its parts."""

    type: Any
    struct: type | None = None  # the object part when a Struct: key -> (attribute, node)
    fields: dict[str, tuple[str, _Node]] = field(default_factory=dict)
    values: _Node | None = None  # the object part when a dict (``*``, or a key msgspec refuses)
    items: _Node | None = None  # the array part


def _nameable(key: str) -> bool:
    """Whether msgspec accepts ``key`` as a field's JSON name."""
    return '"' not in key and "\\" not in key and all(c >= " " for c in key)


def _build(shape: _Shape) -> _Node:
    if not shape.keys and shape.any is None and shape.each is None:
        return _Node(Raw)  # a path ends here: present or not, never parsed
    node = _Node(Any)
    if shape.each is not None:
        node.items = _build(shape.each)
    array: Any = GenericAlias(list, node.items.type) if node.items else None
    if shape.any is not None or not all(map(_nameable, shape.keys)):
        merged = _Shape()
        for child in (shape.any, *shape.keys.values()):
            if child is not None:
                merged.merge(child)
        node.values = _build(merged)
        obj: Any = GenericAlias(dict, (str, node.values.type))
        array = array or _AnyArray
    elif shape.keys:
        node.fields = {k: (f"f{i}", _build(s)) for i, (k, s) in enumerate(shape.keys.items())}
        obj = node.struct = msgspec.defstruct(
            "_Object",
            [(attr, child.type, UNSET) for attr, child in node.fields.values()],
            rename={attr: key for key, (attr, _) in node.fields.items()},
            gc=False,  # holds no cycles: the collector need not track one per element
        )
        array = array or list[Raw]
    else:
        obj = _AnyObject
    node.type = Union[(obj, array, *_SCALARS)]  # noqa: UP007 (built at run time)
    return node


Walk = Callable[[Iterator[Any]], Iterator[Any]]
Lookup = Callable[[Any], Any]  # the value some leading keys name, or UNSET


def _each(values: Iterator[Any]) -> Iterator[Any]:
    return chain.from_iterable(filter(_is_list, values))


def _every_value(values: Iterator[Any]) -> Iterator[Any]:
    return chain.from_iterable(map(dict.values, filter(_is_dict, values)))


def _field(attr: str, last: bool) -> Walk:
    # getattr with a default: any other kind of value (null, a list, a scalar) has no such
    # attribute. Before the last step a falsy value cannot lead further (UNSET, null, 0, "",
    # an empty list or dict), so the plain truth test drops it; the last keeps any present one.
    keep = _present if last else None

    def walk(values: Iterator[Any]) -> Iterator[Any]:
        return filter(keep, map(getattr, values, repeat(attr), repeat(UNSET)))

    return walk


def _dict_key(key: str, last: bool) -> Walk:
    keep = _present if last else None
    read = operator.methodcaller("get", key, UNSET)

    def walk(values: Iterator[Any]) -> Iterator[Any]:
        return filter(keep, map(read, filter(_is_dict, values)))

    return walk


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one path is read from the decoded value."""

    lookup: Lookup  # the value the leading keys name (``_lookup_of``), or UNSET
    spread: int  # the step after them when it is EACH or ANY over Structs; else KEY
    empty: Any  # then the Struct with no field set: a run of those holds nothing
    walks: tuple[Walk, ...]  # the steps after the leading keys


def _plan(root: _Node, steps: Sequence[Step]) -> _Plan:
    node = root
    keys: list[tuple[str | None, str]] = []
    walks: list[Walk] = []
    spread, empty = KEY, None
    for i, (kind, key) in enumerate(steps):
        last = i == len(steps) - 1
        if kind == EACH:
            assert node.items is not None
            walks.append(_each)
            node = node.items
        elif kind == ANY:
            assert node.values is not None
            walks.append(_every_value)
            node = node.values
        elif node.struct is not None:
            attr, node = node.fields[key]
            if walks:
                walks.append(_field(attr, last))
            else:
                keys.append((attr, key))
        else:
            assert node.values is not None
            node = node.values
            if walks:
                walks.append(_dict_key(key, last))
            else:
                keys.append((None, key))
        if i == len(keys) and kind != KEY and not last and steps[i + 1][0] == KEY:
            if node.struct is not None:  # the next step reads a field of these Structs
                spread, empty = kind, node.struct()
    return _Plan(_lookup_of(tuple(keys)), spread, empty, tuple(walks))


def _lookup(root: Any, keys: tuple[tuple[str | None, str], ...]) -> Any:
    """The value the leading keys name (plain look-ups), or UNSET."""
    value = root
    for attr, key in keys:
        if attr is not None:
            value = getattr(value, attr, UNSET)
        elif type(value) is dict:
            value = value.get(key, UNSET)
        else:
            return UNSET
        if value is UNSET:
            return UNSET
    return value


def _lookup_of(keys: tuple[tuple[str | None, str], ...]) -> Lookup:
    """``_lookup`` of these keys as one call. Keys that are all Struct attributes are read by
    one ``attrgetter`` in C: a value that is not such a Struct (UNSET, null, a scalar, a list,
    a dict, ``Raw``) has no attribute ``f<n>``, so the AttributeError means "not there"."""
    if not keys:
        return _same
    if any(attr is None for attr, _ in keys):
        return partial(_lookup, keys=keys)
    get = operator.attrgetter(".".join(attr for attr, _ in keys if attr is not None))

    def lookup(root: Any) -> Any:
        try:
            return get(root)
        except AttributeError:
            return UNSET

    return lookup


def _same(root: Any) -> Any:
    return root


def _occurs(root: Any, plan: _Plan) -> bool:
    value = plan.lookup(root)
    if value is UNSET:
        return False
    if not plan.walks:
        return True
    if plan.spread != KEY:
        # Elements (or values) that are all empty Structs hold nothing: one C-level count
        # skips them. It is tried when the first one is empty, so an array whose elements all
        # have the field is not compared element by element before the first hit.
        parts: Collection[Any] | None
        if plan.spread == EACH:
            parts = value if type(value) is list else None
        else:
            parts = value.values() if type(value) is dict else None
        if not parts:
            return False
        if next(iter(parts)) == plan.empty and operator.countOf(parts, plan.empty) == len(parts):
            return False
    found: Iterator[Any] = iter((value,))
    for walk in plan.walks:  # then every value at once, through C iterators
        found = walk(found)
    return next(found, _END) is not _END


def _cut(shape: _Shape) -> _Shape:
    """The shape skimmed: every value the paths spread over (``[]``, ``*``) left as ``Raw``."""
    out = _Shape()
    if shape.any is None and shape.each is None:
        out.keys = {key: _cut(child) for key, child in shape.keys.items()}
    return out


@dataclass(frozen=True, slots=True)
class _Skim:
    """How one path is answered from the skimmed decode: the keys down to its value, or to
    the raw value it spreads over; then ``rest``, the path from there on, which must be able
    to occur in those bytes (``JsonPath.may_occur_in``) for the path to be there. None: the
    path ends at that value."""

    lookup: Lookup  # the value the keys name (``_lookup_of``), or UNSET
    rest: JsonPath | None


def _skim_plan(shape: _Shape, root: _Node, path: JsonPath) -> _Skim:
    steps = path.steps
    cut = len(steps)
    for i, (_, key) in enumerate(steps):
        if shape.any is not None or shape.each is not None:
            cut = i
            break
        shape = shape.keys[key]  # no spread yet: every step so far is a key
    rest = path_of(path.text, steps[cut:]) if cut < len(steps) else None
    return _Skim(_plan(root, steps[:cut]).lookup, rest)


# Below this many bytes a body is decoded in full at once: with a few elements the Structs
# cost less than the skim's look-ups and key searches (the two break even near 4 KB of items).
SKIM_FROM = 4096
# After a body the skim could not answer (a hit, most often), that many bodies go straight to
# the full decode: a route whose lists hold the key pays for one skim in this many.
SKIM_BACKOFF = 16


# Generating the types takes ~1 ms for a few short paths and grows with depth (7 ms at 64 steps,
# msgspec's recursion limit near 400); a set with a deeper path is left to the simdjson scanner.
MAX_STEPS = 32


def needs_types(paths: Sequence[JsonPath]) -> bool:
    """Whether the generated decoder pays for these paths: some ``[]`` or ``*``, none deeper
    than ``MAX_STEPS``. Paths of keys alone cost the simdjson scanner nothing per element, and
    its parse is faster than msgspec's skipping (44 against 74 us at 87 KB)."""
    steps = [p.steps for p in paths]
    return all(len(s) <= MAX_STEPS for s in steps) and any(k != KEY for s in steps for k, _ in s)


class TypedScanner:
    """Per path, whether it occurs in a JSON body; the same contract as ``FieldScanner``,
    which answers alone for paths that do not ``needs_types``.

    Built once per set of paths (the caller caches it). Between calls ``scan`` keeps only
    whether to skim the next body: the answers do not depend on it.
    """

    def __init__(self, paths: Sequence[JsonPath]) -> None:
        self.paths = tuple(paths)
        self._fallback = FieldScanner(self.paths)
        self._decoder: msgspec.json.Decoder[Any] | None = None
        self._plans: tuple[_Plan, ...] = ()
        self._skimmer: msgspec.json.Decoder[Any] | None = None
        self._skims: tuple[_Skim, ...] = ()
        self._full_for = 0  # bodies left to decode in full before skimming again
        if needs_types(self.paths):
            shape = _Shape()
            for path in self.paths:
                shape.add(path.steps)
            root = _build(shape)
            self._decoder = msgspec.json.Decoder(root.type)
            self._plans = tuple(_plan(root, path.steps) for path in self.paths)
            skimmed = _build(_cut(shape))
            self._skimmer = msgspec.json.Decoder(skimmed.type)
            self._skims = tuple(_skim_plan(shape, skimmed, p) for p in self.paths)

    def scan(self, body: bytes) -> tuple[bool, ...] | None:
        """Per path, whether it occurs in the JSON ``body``; None when it is not valid JSON."""
        if self._decoder is None:
            return self._fallback.scan(body)
        if not body.isascii():  # msgspec checks UTF-8 only in what it decodes, not what it skips
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return None
        if len(body) >= SKIM_FROM:
            if self._full_for:
                self._full_for -= 1
            else:
                seen = self._skim(body)
                if seen is not None:
                    return seen
                self._full_for = SKIM_BACKOFF
        try:
            root = self._decoder.decode(body)
        except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
            return self._fallback.scan(body)
        return tuple([_occurs(root, plan) for plan in self._plans])

    def _skim(self, body: bytes) -> tuple[bool, ...] | None:
        """Per path, whether it occurs, from one decode that leaves every array and ``*``
        value as raw bytes; None when those bytes cannot tell (the rest of a path may occur in
        them) or the decode fails."""
        assert self._skimmer is not None
        try:
            root = self._skimmer.decode(body)
        except (msgspec.DecodeError, RecursionError):
            return None  # the full decode decides, as for any body
        seen = []
        for skim in self._skims:
            value = skim.lookup(root)
            if value is UNSET or skim.rest is None:
                seen.append(value is not UNSET)
                continue
            if type(value) is not Raw:
                return None  # a value decoded where paths merge: the bytes are not at hand
            text = bytes(value)
            if skim.rest.may_occur_in(text, has_escape(text, UNICODE_ESCAPE)):
                return None  # maybe there: the full decode decides
            seen.append(False)
        return tuple(seen)
