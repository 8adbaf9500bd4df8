"""The typed scanner must answer what ``find`` answers on the fully parsed value, and refuse
what the simdjson scanner refuses."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from proxy.core.bytesearch import SLASH_ESCAPE, UNICODE_ESCAPE, contains, has_escape
from proxy.core.fieldscan import FieldScanner
from proxy.core.jsonpaths import JsonPath, find, parse_path
from proxy.core.typedscan import MAX_STEPS, SKIM_FROM, TypedScanner, needs_types


def scan(body: bytes, *texts: str) -> tuple[bool, ...] | None:
    return TypedScanner([parse_path(t) for t in texts]).scan(body)


def skimmed(body: bytes) -> bytes:
    """The body with trailing whitespace (still the same JSON) up to the size the scanner
    skims from: small bodies are decoded in full at once."""
    return body + b" " * SKIM_FROM


def expected(value: object, paths: list[JsonPath]) -> tuple[bool, ...]:
    return tuple(find(value, p, limit=1) > 0 for p in paths)


def quoted(key: str) -> str:
    return '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Keys msgspec takes as field names, keys it refuses (quote, backslash, control character),
# Python keywords, names that are not identifiers, and the empty key.
KEYS = st.sampled_from(["a", "b", "role", "items", "class", "1x", "a.b", "", 'q"', "b\\s", "\x01"])
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=30,
)
PATHS = st.lists(
    st.tuples(KEYS.map(quoted) | st.just("*"), st.integers(0, 2)),
    min_size=1,
    max_size=4,
).map(lambda segs: ".".join(name + "[]" * n for name, n in segs))
TOP_ARRAY_PATHS = st.tuples(st.integers(1, 2), PATHS).map(lambda p: "[]" * p[0] + "." + p[1])


@settings(max_examples=1000)
@example(value={"items": {"a": 1}}, texts=["items[].a", "items.a"])  # one place, two shapes
@example(value={"a": [{"b": 1}]}, texts=["a", "a[].b", "a.*"])  # a path ends where one goes on
@example(value=[[{"a": None}]], texts=["[][].a", "[].a"])
@example(value={"items": [{"a": None}]}, texts=["items[].a", "items[].a.b"])  # falsy, present
@example(value=[{"b": 0}], texts=["[].b", "[].*.a"])
@given(value=VALUES, texts=st.lists(PATHS | TOP_ARRAY_PATHS, min_size=1, max_size=4))
def test_agrees_with_find_on_a_full_parse(value: object, texts: list[str]) -> None:
    """Merged trees, shapes that do not fit the paths, odd keys: the same answer as ``find``."""
    paths = [parse_path(t) for t in texts]
    body = orjson.dumps(value)
    assert TypedScanner(paths).scan(body) == expected(value, paths)
    assert TypedScanner(paths).scan(skimmed(body)) == expected(value, paths)


ITEMS = [{"id": i, "name": f"n{i}"} for i in range(2000)]


@pytest.mark.parametrize(
    ("value", "path", "hit"),
    [
        ({"items": ITEMS}, "items[].role", False),
        ({"items": [*ITEMS, {"role": None}]}, "items[].role", True),  # the last one has it
        ({"items": [{"role": 1}, *ITEMS]}, "items[].role", True),
        ({"items": [*ITEMS[:5], {"role": 1}, *ITEMS[5:]]}, "items[].role", True),
        ({"items": [{}, *ITEMS]}, "items[].role", False),  # the first element is empty
        ({"items": [{}] * 500 + [{"role": 1}]}, "items[].role", True),
        ({"items": [None] * 500 + [7, "s", [], {"role": 1}]}, "items[].role", True),
        ({"items": [{"role": {}}] * 3}, "items[].role.x", False),
        ({"items": [{"sub": {"x": 1}}] * 300}, "items[].sub.role", False),
        ({"items": [{"sub": {"x": 1}}] * 300 + [{"sub": {"role": 2}}]}, "items[].sub.role", True),
        ({"data": [[{"id": 1}] * 50] * 50}, "data[][].x", False),
        ({"data": [[{"id": 1}] * 50] * 50 + [[{"x": 1}]]}, "data[][].x", True),
        ({"data": [[], [[]], [[{"x": 1}]]]}, "data[][][].x", True),
        ({"data": [[1, 2], [3]]}, "data[][]", True),
        ({"data": [[], []]}, "data[][]", False),
        ({"meta": {f"k{i}": {"id": i} for i in range(3000)}}, "meta.*.old", False),
        (
            {"meta": {**{f"k{i}": {"id": i} for i in range(3000)}, "z": {"old": 0}}},
            "meta.*.old",
            True,
        ),
        ({"meta": {f"k{i}": i for i in range(3000)}}, "meta.*", True),
        ({"meta": {}}, "meta.*", False),
        ({"meta": {f"k{i}": [{"old": 1}] for i in range(100)}}, "meta.*[].old", True),
    ],
)
def test_arrays_and_objects(value: object, path: str, hit: bool) -> None:
    assert find(value, parse_path(path), limit=1) == hit  # the case says what it tests
    assert scan(orjson.dumps(value), path) == (hit,)


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": {"role": 1}}',  # an object where the path needs an array
        b'{"items": null}',
        b'{"items": "role"}',
        b'{"items": 12}',
        b'{"items": 1.5e300}',
        b'{"items": true}',
        b'{"items": [[{"role": 1}]]}',  # one level too deep
        b'{"items": ["role", 1, null, false, [], [{"role": 1}]]}',
        b'[{"items": [{"role": 1}]}]',  # the top level is not an object
        b'"items"',
        b"null",
        b"123456",
    ],
)
def test_a_type_mismatch_along_the_path_is_not_there(body: bytes) -> None:
    assert scan(body, "items[].role") == (False,)


def test_a_path_deeper_than_the_generated_types_go_is_still_found() -> None:
    deep = "a" + "[]" * (MAX_STEPS + 5) + ".x"
    value: object = {"x": 1}
    for _ in range(MAX_STEPS + 5):
        value = [value]
    body = orjson.dumps({"a": value, "user": {"role": 1}})
    assert scan(body, deep, "user.role", "a" + "[]" * (MAX_STEPS + 5) + ".y") == (True, True, False)


def test_conflicting_paths_in_one_tree() -> None:
    texts = ("items[].x", "items.y", "items", "meta.*.a", "meta.b.c", "meta.b")
    assert scan(b'{"items": [{"x": 1}]}', *texts) == (True, False, True, False, False, False)
    assert scan(b'{"items": {"y": 1}}', *texts) == (False, True, True, False, False, False)
    assert scan(b'{"meta": {"b": {"c": 1}}}', *texts) == (False, False, False, False, True, True)
    assert scan(b'{"meta": {"z": {"a": 1}}}', *texts) == (False, False, False, True, False, False)
    assert scan(b'{"meta": {"b": null}}', *texts) == (False, False, False, False, False, True)


@pytest.mark.parametrize(
    "key", ['a"b', "a\\b", "\x1f", "", "class", "def", "1-x", "é", "a.b", "f0"]
)
def test_keys_of_any_spelling(key: str) -> None:
    body = orjson.dumps({"a": {key: [{key: 0}]}, key: None})
    texts = (f"a.{quoted(key)}[].{quoted(key)}", quoted(key), f"a.{quoted(key)}.x")
    assert scan(body, *texts) == (True, True, False)


@pytest.mark.parametrize(
    "body",
    [
        b'{"user": {"role": ',
        b'{"user": {"role": 1}} x',
        b'{"user": {"role": 1},}',
        b"",
        b"   ",
        b'{"pad": "\xff", "user": {"role": 1}}',  # invalid UTF-8 where no path goes
        b'{"\xc0\xaf": 1, "user": {"role": 1}}',  # an overlong encoding, in a key
        b'{"x": "\xed\xa0\x80", "user": {"role": 1}}',  # an encoded surrogate
        b'{"x": "\\ud800", "user": {"role": 1}}',  # a lone surrogate escape
        b'{"x": "\x01", "user": {"role": 1}}',  # a control character in a string
        b'{"x": NaN, "user": {"role": 1}}',
        b'{"x": 01, "user": {"role": 1}}',
        b'{"user": 1e400}',  # out of range where the path needs an object
    ],
)
def test_refuses_what_the_simdjson_scanner_refuses(body: bytes) -> None:
    paths = [parse_path("user.role"), parse_path("items[].role")]
    assert needs_types(paths)
    assert FieldScanner(paths).scan(body) is None
    assert TypedScanner(paths).scan(body) is None


@pytest.mark.parametrize(
    ("body", "hit"),
    [
        (b'\xef\xbb\xbf{"user": {"role": 1}}', True),  # a byte-order mark, as simdjson takes it
        (b'{"x": ' + b"[" * 1020 + b"]" * 1020 + b', "user": {"role": 1}}', True),
        (b"[" * 1000 + b'{"user": {"role": 1}}' + b"]" * 1000, False),
    ],
)
def test_accepts_what_the_simdjson_scanner_accepts(body: bytes, hit: bool) -> None:
    paths = [parse_path("user.role"), parse_path("items[].role")]
    assert FieldScanner(paths).scan(body) == (hit, False)
    assert TypedScanner(paths).scan(body) == (hit, False)


def test_nesting_past_simdjson_depth_is_refused_as_before() -> None:
    body = b'{"x": ' + b"[" * 1100 + b"]" * 1100 + b', "user": {"role": 1}}'
    assert FieldScanner([parse_path("user.role")]).scan(body) is None
    assert scan(body, "user.role", "items[].role") is None


def test_difference_huge_numbers_outside_the_paths_are_valid_json() -> None:
    """simdjson refuses a number past 64-bit integers or doubles, so the body was counted as
    malformed and its fields never counted; the grammar allows it, and it is read now."""
    for number in (b"18446744073709551616", b"-9223372036854775809", b"1e400", b"9" * 5000):
        body = b'{"n": [' + number + b'], "user": {"role": 1, "n": ' + number + b"}}"
        assert FieldScanner([parse_path("user.role")]).scan(body) is None
        assert scan(body, "user.role", "items[].role") == (True, False)


def test_a_number_python_cannot_hold_where_a_path_goes_is_refused_as_before() -> None:
    for number in (b"1e400", b"-1e400", b"9" * 5000):
        body = b'{"user": {"role": 1}, "n": [' + number + b', {"x": 1}]}'
        assert scan(body, "user.role", "n[].x") is None
        assert scan(skimmed(body), "user.role", "n[].x") is None


def test_difference_such_a_number_in_a_list_without_the_key_is_read_past() -> None:
    """The skim reads an array whose bytes lack the key as raw bytes: valid JSON, the path is
    not there. The full decode refused the body, so none of its fields was counted."""
    for number in (b"1e400", b"-1e400", b"9" * 5000):
        body = skimmed(b'{"user": {"role": 1}, "n": [' + number + b"]}")
        assert scan(body, "user.role", "n[].x") == (True, False)
        body = skimmed(b'{"user": {"role": 1}, "n": ' + number + b"}")
        assert scan(body, "user.role", "n[].x") == (
            True,
            False,
        )
        body = skimmed(b'{"user": {"role": 1}, "m": {"a": ' + number + b"}}")
        assert scan(body, "user.role", "m.*.x") == (True, False)


@settings(max_examples=300)
@given(
    values=st.lists(VALUES, min_size=1, max_size=40),
    texts=st.lists(PATHS | TOP_ARRAY_PATHS, min_size=1, max_size=3),
)
def test_one_scanner_agrees_with_find_body_after_body(
    values: list[object], texts: list[str]
) -> None:
    """A scanner skims, or after a body the skim could not answer decodes the next ones in
    full: either way each answer is ``find``'s."""
    paths = [parse_path(t) for t in texts]
    scanner = TypedScanner(paths)
    for value in values:
        assert scanner.scan(skimmed(orjson.dumps(value))) == expected(value, paths)


@pytest.mark.parametrize(
    ("body", "hit"),
    [
        (b'{"items": [{"r\\u006fle": 1}]}', True),  # the key spelt with an escape
        (b'{"items": [{"x": "\\"role\\""}]}', False),  # the key's text inside a string
        (b'{"items": [{"x": "role"}, {"role": 1}]}', True),
        (b'{"role": 1, "items": [{"x": "role"}, {"rol": 1}]}', False),
        (b'{"items": [{"x": "\xc3\xa9"}, {"role\xc3\xa9": 1}]}', False),
        (b'{"items": [{"x": [{"role": 1}]}]}', False),  # deeper than the path
        (b'{"items": [{"x": "a\\"b"}, {"r\\u006fle": 1}]}', True),  # another escape first
        (b'{"items": [{"x": "a\\"b\\/c"}, {"rol": 1}]}', False),  # escapes, none of them \u
        (b'{"items": [{"x": "\\\\u"}, {"role\\\\": 1}]}', False),  # \\ then u: read in full
    ],
)
def test_the_skim_reads_keys_as_json_writes_them(body: bytes, hit: bool) -> None:
    scanner = TypedScanner([parse_path("items[].role")])
    assert scanner.scan(skimmed(body)) == (hit,) == expected(orjson.loads(body), scanner.paths)


def test_a_route_whose_lists_turn_from_misses_to_hits_and_back_is_answered_exactly() -> None:
    scanner = TypedScanner([parse_path("user.role"), parse_path("items[].role")])
    miss = skimmed(orjson.dumps({"user": {"role": 1}, "items": ITEMS[:50]}))
    hit = skimmed(orjson.dumps({"user": {}, "items": [*ITEMS[:50], {"role": 2}]}))
    for body, answer in [(miss, (True, False)), (hit, (False, True))] * 3 + [
        (miss, (True, False))
    ] * 40:
        assert scanner.scan(body) == answer


def test_difference_a_repeated_key_counts_by_its_last_occurrence() -> None:
    """As orjson, Python's json and JavaScript's JSON.parse read it (simdjson took the first)."""
    body = b'{"user": {"role": 1}, "user": {}, "meta": {"a": {}, "a": {"old": 1}}}'
    assert scan(body, "user.role", "meta.*.old") == (False, True)
    assert orjson.loads(body) == {"user": {}, "meta": {"a": {"old": 1}}}
    assert FieldScanner([parse_path("user.role"), parse_path("meta.*.old")]).scan(body) == (
        True,
        False,
    )


def test_paths_of_keys_alone_are_left_to_the_simdjson_scanner() -> None:
    """Its parse is faster than msgspec's skipping, and a walk of keys costs nothing per
    element; so such a set keeps the simdjson reading of the two differences above."""
    keys = [parse_path("user.role"), parse_path('"a.b".c')]
    assert not needs_types(keys)
    assert needs_types([*keys, parse_path("items[].role")])
    assert not needs_types([parse_path("a" + "[]" * (MAX_STEPS + 1))])
    body = b'{"n": 1e400, "user": {"role": 1}, "user": {}}'
    assert TypedScanner(keys).scan(body) is None  # as simdjson: 1e400 is out of its range
    body = b'{"user": {"role": 1}, "user": {}}'
    assert TypedScanner(keys).scan(body) == (True, False)  # simdjson reads the first "user"
    assert TypedScanner([*keys, parse_path("items[].role")]).scan(body) == (False, False, False)


@given(
    text=st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")),
    needle=st.binary(max_size=8) | st.sampled_from([b'"role"', b"ro", b'"', b""]),
    at=st.integers(0, 300),
)
@example(text=b'{"a": "b"}\0{"role": 1}', needle=b'"role"', at=0)  # found past a NUL
@example(text=b'{"a": 1}', needle=b'"a\0', at=99)  # a needle with a NUL, planted at the end
def test_the_key_search_finds_what_in_finds(text: bytes, needle: bytes, at: int) -> None:
    """strstr for texts and needles without a NUL byte, memmem for the others: empty needles,
    needles at either end, repeated or partial."""
    planted = text[:at] + needle + text[at:]
    assert contains(planted, needle)
    assert contains(text, needle) == (needle in text)
    assert contains(text + needle[:-1], needle) == (needle in text + needle[:-1])


@given(text=st.binary(max_size=300).map(lambda b: b.replace(b"q", b"\\").replace(b"p", b"u")))
@example(text=b"\\" * 50 + b"u")
def test_the_escape_search_finds_what_in_finds(text: bytes) -> None:
    assert has_escape(text, UNICODE_ESCAPE) == (b"\\u" in text)
    assert has_escape(text, SLASH_ESCAPE) == (b"\\/" in text)
