"""The field scanner must answer exactly what a full parse and ``find`` answer."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.core.fieldscan import FieldScanner
from proxy.core.jsonpaths import find, parse_path

KEYS = st.sampled_from(["user", "role", "items", "id", "a", "b", "roles"])
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)
SEGMENT = st.tuples(st.sampled_from(["user", "role", "items", "id", "a", "*"]), st.integers(0, 2))
PATH = st.lists(SEGMENT, min_size=1, max_size=4).map(
    lambda segs: ".".join(name + "[]" * n for name, n in segs)
)


@settings(max_examples=400)
@given(value=JSON, texts=st.lists(PATH, min_size=1, max_size=3))
def test_scanner_agrees_with_a_full_parse(value: object, texts: list[str]) -> None:
    paths = [parse_path(t) for t in texts]
    body = orjson.dumps(value)
    seen = FieldScanner(paths).scan(body)
    assert seen == tuple(find(value, p, limit=1) > 0 for p in paths)


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        (b'{"user": {"role": "admin"}}', "user.role", True),
        (b'{"user": {"role": null}}', "user.role", True),
        (b'{"user": {"roles": []}}', "user.role", False),
        (b'{"user": null}', "user.role", False),
        (b'{"items": [{"role": 1}, {"id": 2}]}', "items[].role", True),
        (b'{"items": [{"id": 2}, null]}', "items[].role", False),
        (b'{"data": [[{"x": 1}]]}', "data[][].x", True),
        (b'{"meta": {"a": {"old": 1}, "b": {}}}', "meta.*.old", True),
        (b'[{"id": 1}]', "[].id", True),
        (b'{"pad": "' + b"x" * 100_000 + b'", "user": {"role": 1}}', "user.role", True),
    ],
)
def test_scanner_finds_fields(body: bytes, path: str, expected: bool) -> None:
    assert FieldScanner([parse_path(path)]).scan(body) == (expected,)


def test_malformed_json_is_none_and_other_shapes_are_not_found() -> None:
    scanner = FieldScanner([parse_path("user.role")])
    assert scanner.scan(b'{"user": {"role": ') is None
    assert scanner.scan(b'{"x": "\xff", "user": {"role": 1}}') is None  # invalid UTF-8
    assert scanner.scan(b'{"user": "plain string"}') == (False,)
    assert scanner.scan(b'[{"user": {"role": 1}}]') == (False,)


def test_an_object_and_an_array_at_one_place() -> None:
    scanner = FieldScanner([parse_path("items[].role"), parse_path("items.count")])
    assert scanner.scan(b'{"items": [{"role": 1}]}') == (True, False)
    assert scanner.scan(b'{"items": {"count": 1}}') == (False, True)
