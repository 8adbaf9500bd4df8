"""Micro-benchmark of response inspection: finding rule paths in a JSON body.

    .venv/bin/python loadtest/inspection.py [--repeat 20] [--budget 0.02]

(Not ``inspect.py``: a script's directory comes first on ``sys.path``, and a file of that name
would stand in for the standard library's ``inspect``, which ``dataclasses`` imports.)

Bodies, each with the rules ``user.role`` and ``items[].role`` unless said otherwise:

- ``1KB miss``, ``87KB miss``: a ``user`` object with ``role``, then 8 or 1,000 small items,
  none of which has ``role``;
- ``1KB hit``, ``87KB hit``: the same, every item with ``role``;
- ``87KB no key``: the miss body without ``user.role``: no ``"role"`` anywhere, so the
  prefilter rules both rules out (what it saves);
- ``87KB miss, escapes``: the miss body with a quoted word in every item's name (``\\"``
  in the JSON): the skim first asks whether the items hold a ``\\u`` escape;
- ``87KB keys only``: the miss body with the rule ``user.role`` alone (which
  ``typedscan.needs_types`` leaves to the simdjson scanner; the typed row then times the
  decoder generated for ``user.role`` and an array path that no body has);
- ``87KB *miss``: ``meta`` with 1,000 keys, each an object without ``deprecated`` (the key
  occurs at the top, so the prefilter lets the body through); rule ``meta.*.deprecated``;
- ``87KB *hit``: the same, the last value with ``deprecated``.

For the item rules it also times the skim written by hand (the array decoded as ``Raw`` and
searched for the key with ``proxy.core.bytesearch.contains``, decoded typed only when found),
which the engine now does for any paths (``proxy/core/typedscan.py``), and the key searches it
could use: ``bytes.find``, the C library's ``memmem`` and ``contains`` (its ``strstr``).

Prints microseconds per call (best of ``--repeat`` runs, each run as many calls as fit in
``--budget`` seconds) for today's engine, the candidates and the floors (a parse alone), then
the cyclic collector's work: generation-0 collections per 1,000 calls and the time per call
with the collector off, with the start-up objects frozen (``gc.freeze()``) as Switchback runs.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import time
from collections.abc import Callable

import msgspec
import orjson
import simdjson

from proxy.core.bytesearch import contains
from proxy.core.fieldscan import FieldScanner
from proxy.core.jsonpaths import JsonPath, find, parse_path
from proxy.core.rules import Rule, RuleSet
from proxy.core.typedscan import TypedScanner, needs_types

ITEM_RULES = ("user.role", "items[].role")
ANY_RULES = ("meta.*.deprecated",)
KEY_RULES = ("user.role",)
# Eight more rules whose keys no body has: what the prefilter's searches cost as rules grow.
ABSENT_RULES = (
    "user.nickname",
    "user.address.zip",
    "items[].legacy_id",
    "items[].owner.email",
    "items[].labels[]",
    "links.self",
    "data[].uuid",
    "extra.*.old",
)


def _item(i: int, role: bool, quoted: bool = False) -> dict[str, object]:
    name = f'user-{i:05d} "{i % 7}"' if quoted else f"user-{i:05d}"  # JSON: \"
    item: dict[str, object] = {"id": i, "name": name, "team": f"t{i % 17}"}
    item |= {"email": f"u{i:05d}@example.com", "active": i % 3 != 0}
    if role:
        item["role"] = "member"
    return item


def item_body(count: int, role: bool, user_role: bool = True, quoted: bool = False) -> bytes:
    user = {"id": 1, "name": "Ada Lovelace"} | ({"role": "admin"} if user_role else {})
    items = [_item(i, role, quoted) for i in range(1, count + 1)]
    return json.dumps({"user": user, "items": items}, separators=(",", ":")).encode()


def any_body(count: int, hit: bool) -> bytes:
    meta: dict[str, object] = {f"field-{i:04d}": _item(i, False) for i in range(count)}
    if hit:
        meta[f"field-{count - 1:04d}"] = {"deprecated": True}
    # "deprecated" occurs outside the path too, so the prefilter lets the body through.
    return json.dumps({"deprecated": False, "meta": meta}, separators=(",", ":")).encode()


BODIES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "1KB miss": (item_body(8, False), ITEM_RULES),
    "1KB hit": (item_body(8, True), ITEM_RULES),
    "87KB miss": (item_body(1000, False), ITEM_RULES),
    "87KB hit": (item_body(1000, True), ITEM_RULES),
    "87KB no key": (item_body(1000, False, user_role=False), ITEM_RULES),
    "87KB miss, escapes": (item_body(1000, False, quoted=True), ITEM_RULES),
    "87KB keys only": (item_body(1000, False), KEY_RULES),
    "87KB *miss": (any_body(1000, False), ANY_RULES),
    "87KB *hit": (any_body(1000, True), ANY_RULES),
}


class _Item(msgspec.Struct, gc=False):
    role: msgspec.Raw = msgspec.UNSET


class _User(msgspec.Struct, gc=False):
    role: msgspec.Raw = msgspec.UNSET


class _Body(msgspec.Struct, gc=False):
    user: _User | None = None
    items: list[_Item] | None = None


class _Nothing(msgspec.Struct, gc=False):
    pass


class _Skimmed(msgspec.Struct, gc=False):
    user: _User | None = None
    items: msgspec.Raw = msgspec.UNSET  # validated and skipped: no Struct per element


_LIBC = ctypes.CDLL(None)
_LIBC.memmem.restype = ctypes.c_void_p
_LIBC.memmem.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]


def _memmem(text: bytes, needle: bytes) -> bool:
    return _LIBC.memmem(text, len(text), needle, len(needle)) is not None


_PARSER = simdjson.Parser()
_HAND = msgspec.json.Decoder(_Body)
_SKIP = msgspec.json.Decoder(_Nothing | list[msgspec.Raw])
_SKIM = msgspec.json.Decoder(_Skimmed)
_ROLE = b'"role"'


def _skimmed(body: bytes) -> tuple[bool, bool]:
    """The skim by hand: decode with the array as ``Raw`` (one validating pass, no Struct
    per element), and decode it typed only when its bytes hold the key (or an escape, which
    could spell it otherwise). Without the engine's back-off after a hit."""
    doc = _SKIM.decode(body)
    items = bytes(doc.items) if doc.items is not msgspec.UNSET else b""
    user = doc.user is not None and doc.user.role is not msgspec.UNSET
    if b"\\" not in items and not contains(items, _ROLE):
        return user, False
    return _hand_typed(body)


def _hand_typed(body: bytes) -> tuple[bool, bool]:
    """The brief's reference point: a decoder typed by hand for the item rules only."""
    doc = _HAND.decode(body)
    items = doc.items or ()
    return (
        doc.user is not None and doc.user.role is not msgspec.UNSET,
        any(item.role is not msgspec.UNSET for item in items),
    )


def _prefiltered(
    paths: list[JsonPath], scan: Callable[[bytes], object]
) -> Callable[[bytes], object]:
    def call(body: bytes) -> object:  # what RuleSet.match_body does before the engine
        escaped = b"\\" in body and b"\\u" in body
        if not [p for p in paths if p.may_occur_in(body, escaped)]:
            return ()
        return scan(body)

    return call


def candidates(texts: tuple[str, ...]) -> dict[str, Callable[[bytes], object]]:
    paths = [parse_path(t) for t in texts]
    many = paths + [parse_path(t) for t in ABSENT_RULES]
    old, new, new_many = FieldScanner(paths), TypedScanner(paths), TypedScanner(many)
    typed = new.scan
    if not needs_types(paths):  # time the decoder anyway, for the record of that choice
        forced = TypedScanner([*paths, parse_path("absent[]")])

        def typed(body: bytes) -> object:
            seen = forced.scan(body)
            return seen and seen[:-1]

    rules = tuple(
        Rule(id=str(p), kind="field", element=str(p), route=None, path=p, deprecated_at=0)
        for p in paths
    )
    out: dict[str, Callable[[bytes], object]] = {
        "simdjson scanner (before)": old.scan,
        "typed msgspec decoder": typed,
        "  RuleSet.match_body (after)": lambda b: RuleSet.match_body(rules, b),
        "  prefilter + simdjson scanner (match_body before)": _prefiltered(paths, old.scan),
        "  prefilter + typed msgspec": _prefiltered(paths, typed),
        "  prefilter alone": _prefiltered(paths, lambda _: ()),
        "  10 rules: typed msgspec": new_many.scan,
        "  10 rules: prefilter alone": _prefiltered(many, lambda _: ()),
        "orjson.loads + find": lambda b: tuple(find(orjson.loads(b), p, 1) > 0 for p in paths),
        "simdjson parse + typed msgspec": lambda b: (_PARSER.parse(b), typed(b)),
        "floor: simdjson parse only": _PARSER.parse,
        "floor: msgspec validate only": _SKIP.decode,
    }
    if texts == ITEM_RULES:
        out["hand-typed msgspec (item rules)"] = _hand_typed
        out["  skim: array as Raw, contains for the key"] = _skimmed
        out["floor: bytes.find of the key in the body"] = lambda b: b.find(_ROLE, 64)
        out["floor: glibc memmem of the key in the body"] = lambda b: _memmem(b[64:], _ROLE)
        out["floor: contains (glibc strstr) of the key"] = lambda b: contains(b[64:], _ROLE)
    return out


def best_us(
    calls: dict[str, Callable[[bytes], object]], body: bytes, repeat: int, budget: float
) -> dict[str, float]:
    """Microseconds per call, best of ``repeat`` runs; the candidates take turns run by run,
    so a moment when the machine is busy slows them alike."""
    numbers = {}
    for label, call in calls.items():  # warm up, and size a run to ~budget seconds
        start, number = time.perf_counter(), 0
        while time.perf_counter() - start < budget:
            call(body)
            number += 1
        numbers[label] = number
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeat):
        for label, call in calls.items():
            number = numbers[label]
            start = time.perf_counter()
            for _ in range(number):
                call(body)
            best[label] = min(best[label], (time.perf_counter() - start) / number * 1e6)
    return best


def collections_per_1000(call: Callable[[bytes], object], body: bytes) -> int:
    count = 0

    def counted(phase: str, info: dict[str, int]) -> None:
        nonlocal count
        if phase == "start" and info["generation"] == 0:
            count += 1

    gc.callbacks.append(counted)
    try:
        for _ in range(1000):
            call(body)
    finally:
        gc.callbacks.remove(counted)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20, help="runs per figure (the best is kept)")
    parser.add_argument("--budget", type=float, default=0.02, help="seconds per run, roughly")
    args = parser.parse_args()
    gc.collect()
    gc.freeze()  # as Switchback does after start-up
    table: dict[str, dict[str, str]] = {}
    collections: dict[str, dict[str, str]] = {}
    collector_off: dict[str, dict[str, str]] = {}
    for name, (body, texts) in BODIES.items():
        calls = candidates(texts)
        answers = {calls[k](body) for k in ("simdjson scanner (before)", "typed msgspec decoder")}
        if len(answers) != 1:
            raise SystemExit(f"{name}: the engines disagree: {answers}")
        for label, us in best_us(calls, body, args.repeat, args.budget).items():
            table.setdefault(label, {})[name] = f"{us:,.1f}"
        engines = {k: v for k, v in calls.items() if not k.startswith(("floor", "  "))}
        for label, call in engines.items():
            collections.setdefault(label, {})[name] = str(collections_per_1000(call, body))
        gc.disable()
        try:
            for label, us in best_us(engines, body, args.repeat, args.budget).items():
                collector_off.setdefault(label, {})[name] = f"{us:,.1f}"
        finally:
            gc.enable()
    sizes = " ".join(f"{n}: {len(b):,} B" for n, (b, _) in BODIES.items())
    print(f"bodies: {sizes}\n")
    _print(f"us per call (best of {args.repeat})", table)
    print()
    _print("gen-0 collections per 1,000 calls", collections)
    print()
    _print("us per call, collector off", collector_off)


def _print(title: str, rows: dict[str, dict[str, str]]) -> None:
    names = list(BODIES)
    print(f"| {title} | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for label, cells in rows.items():
        print(f"| {label.strip()} | " + " | ".join(cells.get(n, "–") for n in names) + " |")


if __name__ == "__main__":
    main()
