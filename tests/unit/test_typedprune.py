"""The generated pruner against the reference one: the same JSON value for every body and list,
including the bodies it leaves to the full decode (nested past its types, keys it cannot name)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.fieldselect import parse_fields, prune, render
from proxy.core.typedprune import ARRAY_DEPTH, Malformed, Pruner, pruner_for
from tests.unit.test_fieldselect import json_values, trees


def reference(body: bytes, fields: str) -> Any:
    return prune(msgspec.json.decode(body), parse_fields(fields))


@given(json_values, trees)
def test_the_generated_pruner_gives_the_reference_value(value: Any, tree: dict[str, Any]) -> None:
    body = msgspec.json.encode(value)
    assert msgspec.json.decode(Pruner(tree).prune_bytes(body)) == prune(value, tree)


@pytest.mark.parametrize(
    ("body", "fields", "expected"),
    [
        (b'{"user": {"id": 1, "role": [1, 2 ], "x": {}}, "z": 1}', "user(role,id)",
         b'{"user":{"role":[1, 2 ],"id":1}}'),  # the list's order; a whole value as it came
        (b'{"user": "bob", "items": [1, {"id": 2, "q": 3}, [{"id": 4, "r": 1}]]}',
         "user(id),items(id)", b'{"user":"bob","items":[1,{"id":2},[{"id":4}]]}'),
        (b'[{"id": 1, "x": 2}, {"x": 3}]', "id", b'[{"id":1},{}]'),
        (b'{"a\\"b": 1, "c": 2}', 'a"b', b'{"a\\"b":1}'),  # a key msgspec cannot name
        (b'{"n": 123456789012345678901234567890}', "n", b'{"n":123456789012345678901234567890}'),
        (b'{"a\\"b": {"n": 123456789012345678901234567890, "m": 1}}', 'a"b(n)',
         b'{"a\\"b":{"n":123456789012345678901234567890}}'),  # both, on the reference path
    ],
)  # fmt: skip
def test_prune_bytes(body: bytes, fields: str, expected: bytes) -> None:
    out = pruner_for(fields).prune_bytes(body)
    assert msgspec.json.decode(out) == reference(body, fields) == msgspec.json.decode(expected)
    assert out == expected


def test_arrays_nested_past_the_types_take_the_reference_path() -> None:
    deep = b"[" * (ARRAY_DEPTH + 3) + b'{"id": 1, "x": 2}' + b"]" * (ARRAY_DEPTH + 3)
    out = pruner_for("id").prune_bytes(deep)
    assert msgspec.json.decode(out) == reference(deep, "id")
    assert b'"x"' not in out


@pytest.mark.parametrize("body", [b'{"a": 1', b"", b'{"a": "\xff"}', b"nul"])
def test_what_is_not_json_is_malformed(body: bytes) -> None:
    with pytest.raises(Malformed):
        pruner_for("a").prune_bytes(body)


def test_pruners_are_memoized_by_the_lists_text() -> None:
    assert pruner_for("a(b),c") is pruner_for("a(b),c")
    assert render(pruner_for("a/b,c").tree) == "a(b),c"


@given(st.binary(max_size=64))
def test_any_bytes_are_pruned_as_the_reference_prunes_them_or_refused(body: bytes) -> None:
    pruner = pruner_for("a(b),c")
    try:
        expected = reference(body, "a(b),c")
    except (msgspec.DecodeError, UnicodeDecodeError):
        with pytest.raises(Malformed):
            pruner.prune_bytes(body)
        return
    assert msgspec.json.decode(pruner.prune_bytes(body)) == expected
