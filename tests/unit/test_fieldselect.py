"""Field lists (Google's partial-response syntax): parsing, rendering, pruning, declared paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.bodyinspect import accepts
from proxy.core.fieldselect import (
    MAX_DEPTH,
    FieldsError,
    Tree,
    declares,
    parse_fields,
    prune,
    query_value,
    render,
)
from proxy.core.jsonpaths import parse_path


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("id", {"id": None}),
        ("user(id,name,roles),items(id,title)",
         {"user": {"id": None, "name": None, "roles": None}, "items": {"id": None, "title": None}}),
        ("a/b", {"a": {"b": None}}),
        ("a/b/c,a/d", {"a": {"b": {"c": None}, "d": None}}),
        ("a(b),a(c)", {"a": {"b": None, "c": None}}),
        ("a(b),a", {"a": None}),
        ("a,a/b", {"a": None}),
        (" user ( id , name ) ", {"user": {"id": None, "name": None}}),
        ("a/b(c,d)", {"a": {"b": {"c": None, "d": None}}}),
        ("données,x-y.z", {"données": None, "x-y.z": None}),
    ],
)  # fmt: skip
def test_parse(text: str, tree: Tree) -> None:
    assert parse_fields(text) == tree


@pytest.mark.parametrize(
    ("text", "position", "expected"),
    [
        ("", 0, "a field name"),
        ("a,", 2, "a field name"),
        ("a,,b", 2, "a field name"),
        ("a(", 2, "a field name"),
        ("a(b", 3, "',' or ')'"),
        ("a(b c)", 4, "',' or ')'"),
        ("a)", 1, "',' or the end (unmatched ')')"),
        ("a/", 2, "a field name"),
        ("a//b", 2, "a field name"),
        ("(a)", 0, "a field name"),
        ("a()", 2, "a field name"),
        ("user(id,name", 12, "',' or ')'"),
    ],
)
def test_malformed_lists_say_where_and_what_was_expected(
    text: str, position: int, expected: str
) -> None:
    with pytest.raises(FieldsError) as caught:
        parse_fields(text)
    assert (caught.value.position, caught.value.expected) == (position, expected)
    assert str(caught.value) == f"at position {position}: expected {expected}"


def test_nesting_is_bounded_without_exhausting_the_stack() -> None:
    deep = "a(" * (MAX_DEPTH + 1) + "b" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(FieldsError, match="levels of nesting"):
        parse_fields(deep)
    with pytest.raises(FieldsError, match="levels of nesting"):
        parse_fields("/".join(["a"] * (MAX_DEPTH + 1)))
    assert parse_fields("/".join(["a"] * MAX_DEPTH))
    with pytest.raises(FieldsError):
        parse_fields("a(" * 100_000)


def test_parsed_lists_are_memoized() -> None:
    assert parse_fields("memo(a,b)") is parse_fields("memo(a,b)")


BODY = {
    "user": {"id": 1, "name": "Ada", "role": "admin", "roles": ["admin"], "meta": {"x": 1}},
    "items": [{"id": 1, "title": "a", "role": "x"}, {"id": 2, "title": "b"}, "scalar", [{"id": 3}]],
    "total": 2,
}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("user(id,name,roles),items(id,title)",
         {"user": {"id": 1, "name": "Ada", "roles": ["admin"]},
          "items": [{"id": 1, "title": "a"}, {"id": 2, "title": "b"}, "scalar", [{"id": 3}]]}),
        ("user/meta/x", {"user": {"meta": {"x": 1}}}),
        ("total,missing", {"total": 2}),  # absent stays absent
        ("user(missing)", {"user": {}}),
        ("total(x)", {"total": 2}),  # nothing to select inside: kept whole
    ],
)  # fmt: skip
def test_prune(fields: str, expected: Any) -> None:
    assert prune(BODY, parse_fields(fields)) == expected


def test_a_selection_applies_to_each_element_of_a_top_level_array() -> None:
    assert prune([{"id": 1, "x": 2}, {"x": 3}], parse_fields("id")) == [{"id": 1}, {}]


def test_prune_keeps_the_input_key_order_and_never_changes_it() -> None:
    body = {"b": 1, "a": {"y": 1, "x": 2}}
    copy = {"b": 1, "a": {"y": 1, "x": 2}}
    out = prune(body, parse_fields("a(x,y),b"))
    assert list(out) == ["b", "a"] and list(out["a"]) == ["y", "x"]
    assert body == copy


@pytest.mark.parametrize(
    ("fields", "path", "declared"),
    [
        ("user(id,role)", "user.role", True),
        ("user(id)", "user.role", False),
        ("user", "user.role", True),  # the whole user
        ("user/role/name", "user.role", True),  # part of it
        ("items(role)", "items[].role", True),
        ("items(id)", "items[].role", False),
        ("id", "[].id", True),
        ("meta(a(x))", "meta.*.x", True),
        ("meta(a(y))", "meta.*.x", False),
        ("other", "user.role", False),
    ],
)
def test_declares(fields: str, path: str, declared: bool) -> None:
    assert declares(parse_fields(fields), parse_path(path)) is declared


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("fields=id", "id"),
        ("a=1&fields=user%28id%2Cname%29&fields=x", "user(id,name)"),
        ("fields=a+b", "a b"),
        ("field=id", None),
        ("", None),
        (None, None),
    ],
)
def test_query_value(query: str | None, value: str | None) -> None:
    assert query_value(query, "fields") == value


def test_query_value_that_is_not_utf8_raises() -> None:
    with pytest.raises(UnicodeDecodeError):
        query_value("fields=%FF", "fields")


@pytest.mark.parametrize(
    ("header", "coding", "ok"),
    [
        (b"gzip, deflate, br", b"gzip", True),
        (b"br;q=1.0, gzip;q=0", b"gzip", False),
        (b"*", b"gzip", True),
        (b"*;q=0", b"gzip", False),
        (b"identity", b"gzip", False),
        (None, b"gzip", False),
        (b"GZIP", b"gzip", True),
        (b"gzip;q=0, *", b"gzip", False),
    ],
)
def test_accepts(header: bytes | None, coding: bytes, ok: bool) -> None:
    assert accepts(header, coding) is ok


# -- properties ------------------------------------------------------------------------------

names = st.text(
    st.characters(blacklist_characters=",()/ \t", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=6,
)
trees: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.dictionaries(names, st.none(), min_size=1, max_size=4),
    lambda inner: st.dictionaries(names, st.none() | inner, min_size=1, max_size=4),
    max_leaves=20,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "c", "id", "x"]) | names, inner, max_size=4)
    ),
    max_leaves=30,
)


@given(trees)
def test_parse_of_render_round_trips(tree: dict[str, Any]) -> None:
    assert parse_fields(render(tree)) == tree


@given(json_values, trees)
def test_pruning_is_idempotent(value: Any, tree: dict[str, Any]) -> None:
    once = prune(value, tree)
    assert prune(once, tree) == once


def is_substructure(small: Any, big: Any) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            k in big and is_substructure(v, big[k]) for k, v in small.items()
        )
    if isinstance(small, list):
        return (
            isinstance(big, list)
            and len(small) == len(big)
            and all(is_substructure(s, b) for s, b in zip(small, big, strict=True))
        )
    return bool(small == big and type(small) is type(big))


@given(json_values, trees)
def test_the_result_is_a_substructure_of_the_input(value: Any, tree: dict[str, Any]) -> None:
    assert is_substructure(prune(value, tree), value)


@given(st.dictionaries(names, json_values, min_size=1, max_size=6))
def test_selecting_every_top_level_key_returns_the_input(value: dict[str, Any]) -> None:
    tree = parse_fields(",".join(value))
    assert prune(value, tree) == value


@given(json_values, trees)
def test_a_path_is_found_in_the_pruned_body_only_where_declared(
    value: Any, tree: dict[str, Any]
) -> None:
    """The exactness prune mode's exposure counting relies on."""
    from proxy.core.jsonpaths import find

    pruned = prune(value, tree)
    for key in ("a", "b", "id"):
        for text in (key, f"a.{key}", f"[].{key}", f"*.{key}", f"a[].{key}"):
            path = parse_path(text)
            if find(pruned, path, 1) and not declares(tree, path):
                raise AssertionError(f"{text} found in {pruned!r} but not declared by {tree!r}")
