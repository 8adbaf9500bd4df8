"""The structural JSON diff (proxy.core.jsondiff) and the answer comparison (proxy.core.compat)."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.compat import Answer, collapse, compare, redact
from proxy.core.jsondiff import (
    ARRAY_TO_OBJECT,
    FIELD_ADDED,
    FIELD_REMOVED,
    MAX_DIFFERENCES,
    OBJECT_TO_ARRAY,
    STATUS_CHANGED,
    TYPE_CHANGED,
    VALUE_CHANGED,
    Difference,
    diff,
    path_text,
)
from proxy.core.jsonpaths import parse_path

# Any key but NUL, which no config path can name (``parse_path`` refuses it): a difference at
# such a key is reported, but cannot be ignored or deprecated.
key_chars = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
keys = st.text(key_chars, max_size=6)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@pytest.mark.parametrize(
    ("stable", "candidate", "expected"),
    [
        ({"user": {"role": "a"}}, {"user": {}}, [("user.role", FIELD_REMOVED)]),
        ({"user": {"id": 1}}, {"user": {"id": "1"}}, [("user.id", TYPE_CHANGED)]),
        ({"items": [1]}, {"items": {"0": 1}}, [("items", ARRAY_TO_OBJECT)]),
        ({"items": {"a": 1}}, {"items": [1]}, [("items", OBJECT_TO_ARRAY)]),
        ({"a": 1}, {"a": 1, "b": 2}, [("b", FIELD_ADDED)]),
        (
            {"items": [{"id": 1, "role": "x"}]},
            {"items": [{"id": 1}]},
            [("items[].role", FIELD_REMOVED)],
        ),
        ([{"id": 1}], [{"id": None}], [("[].id", TYPE_CHANGED)]),
        ({"a": 1}, [1], [("", OBJECT_TO_ARRAY)]),
        ({"a.b": 1}, {}, [('"a.b"', FIELD_REMOVED)]),
        ({"a": 1}, {"a": 2}, []),  # values are not compared by default
    ],
)
def test_each_kind_of_difference_is_found_by_path(
    stable: Any, candidate: Any, expected: list[tuple[str, str]]
) -> None:
    assert diff(stable, candidate) == [Difference(p, k) for p, k in expected]


def test_values_are_compared_only_when_asked() -> None:
    assert diff({"a": 1}, {"a": 2}, values=True) == [Difference("a", VALUE_CHANGED)]
    assert diff({"a": True}, {"a": 1}, values=True) == [Difference("a", TYPE_CHANGED)]


def test_one_difference_per_path_for_every_element() -> None:
    stable = {"items": [{"role": "x"} for _ in range(50)]}
    candidate = {"items": [{} for _ in range(50)]}
    assert diff(stable, candidate) == [Difference("items[].role", FIELD_REMOVED)]


def test_ignored_paths_and_wildcards_are_skipped() -> None:
    stable = {"meta": {"a": {"t": 1}, "b": {"t": 2}}, "user": {"role": "x", "id": 1}}
    candidate = {"meta": {"a": {"t": "1"}, "b": {}}, "user": {"id": 1}}
    assert diff(stable, candidate, [parse_path("meta.*.t")]) == [
        Difference("user.role", FIELD_REMOVED)
    ]
    assert diff(stable, candidate, [parse_path("meta"), parse_path("user")]) == []


def test_differences_are_bounded() -> None:
    stable = {f"k{i}": i for i in range(500)}
    assert len(diff(stable, {})) == MAX_DIFFERENCES


@given(json_values)
def test_a_value_never_differs_from_itself(value: Any) -> None:
    assert diff(value, value, values=True) == []


@given(st.dictionaries(keys, json_values, min_size=1), st.data())
def test_removing_a_key_is_one_removal_and_the_reverse_one_addition(
    value: dict[str, Any], data: st.DataObject
) -> None:
    key = data.draw(st.sampled_from(sorted(value)))
    smaller = {k: v for k, v in value.items() if k != key}
    path = path_text(((0, key),))
    assert diff(value, smaller) == [Difference(path, FIELD_REMOVED)]
    assert diff(smaller, value) == [Difference(path, FIELD_ADDED)]


@given(json_values, json_values)
def test_removals_one_way_are_additions_the_other(a: Any, b: Any) -> None:
    forward = {(d.path, d.kind) for d in diff(a, b)}
    backward = {(d.path, d.kind) for d in diff(b, a)}
    if len(forward) < MAX_DIFFERENCES and len(backward) < MAX_DIFFERENCES:
        removed = {p for p, k in forward if k == FIELD_REMOVED}
        assert removed == {p for p, k in backward if k == FIELD_ADDED}


@given(st.lists(st.tuples(st.sampled_from([0, 2]), st.text(key_chars, max_size=5)), min_size=1))
def test_paths_read_back_as_the_same_steps(raw: list[tuple[int, str]]) -> None:
    steps = tuple((kind, name if kind == 0 else "") for kind, name in raw)
    assert parse_path(path_text(steps)).steps == steps


@given(json_values, json_values)
def test_every_difference_is_skipped_when_its_path_is_ignored(a: Any, b: Any) -> None:
    found = diff(a, b)
    paths = [parse_path(d.path) for d in found if d.path]
    rest = diff(a, b, paths)
    assert all(d.path == "" for d in rest)


def _json(status: int, value: Any, encoding: bytes | None = None) -> Answer:
    body = orjson.dumps(value)
    if encoding == b"gzip":
        body = gzip.compress(body)
    return Answer(status, b"application/json", encoding, body)


def test_compare_answers() -> None:
    ok = _json(200, {"a": 1})
    assert compare(ok, _json(404, {"a": 1})) == [Difference("", STATUS_CHANGED)]
    assert compare(ok, _json(200, {}, b"gzip")) == [Difference("a", FIELD_REMOVED)]
    assert compare(ok, Answer(200, b"text/html", None, b"<p>")) == [Difference("", TYPE_CHANGED)]
    assert compare(ok, Answer(200, b"application/json", None, b"{")) == [
        Difference("", TYPE_CHANGED)
    ]
    text = Answer(200, b"text/plain", None, b"a")
    assert compare(text, Answer(200, b"text/plain", None, b"b")) == []


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/users/42", "/users/{id}"),
        ("/orders/3f2b1c9e-1a2b-4c3d-8e9f-0123456789ab/items", "/orders/{id}/items"),
        ("/v1/items", "/v1/items"),
        ("/a/b/c/d/e/f/g/h", "/a/b/c/d/e/f/..."),
        ("/mail/someone@example.com", "/mail/{id}"),
    ],
)
def test_ids_are_collapsed_in_route_labels(path: str, label: str) -> None:
    assert collapse(path) == label


def test_credentials_are_redacted() -> None:
    headers = [
        (b"Authorization", b"Bearer s3cret"),
        (b"cookie", b"sid=1"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"X-Api-Key", b"k"),
        (b"Accept", b"application/json"),
    ]
    shown = redact(headers, "x-api-key")
    assert shown == [
        ("Authorization", "[redacted]"),
        ("cookie", "[redacted]"),
        ("Proxy-Authorization", "[redacted]"),
        ("X-Api-Key", "[redacted]"),
        ("Accept", "application/json"),
    ]
