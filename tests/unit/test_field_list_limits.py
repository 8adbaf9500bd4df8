"""Field lists at their edges: query keys that are not UTF-8, and the bound on names."""

from __future__ import annotations

import pytest

from proxy.core import typedprune
from proxy.core.fieldselect import MAX_NAMES, FieldsError, parse_fields, query_value


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("%ff=1", None),
        ("%ff=1&fields=id", "id"),
        ("%FF%FE+x=%ff&fields=a%2Cb", "a,b"),
        ("fi%65lds=id", "id"),  # a key is compared decoded
        ("\xff=1&fields=%C3%A9", "\xe9"),
    ],
)
def test_other_keys_that_are_not_utf8_are_passed_over(query: str, value: str | None) -> None:
    assert query_value(query, "fields") == value


def test_the_value_of_the_key_must_be_utf8() -> None:
    with pytest.raises(UnicodeDecodeError) as info:
        query_value("%ff=1&fields=id%ff", "fields")
    assert info.value.start == 2


def test_the_limit_is_256_names() -> None:
    assert MAX_NAMES == 256  # the README and tests/integration/test_field_list_limits.py say so


@pytest.mark.parametrize(
    "names",
    [
        [f"n{i}" for i in range(MAX_NAMES)],
        ["a/b"] * (MAX_NAMES // 2),  # a repeated name counts each time; each of a path too
        [f"a{i}(b{i}(c{i}))" for i in range(MAX_NAMES // 3)] + ["z"],
    ],
)
def test_a_list_at_the_limit_parses(names: list[str]) -> None:
    assert parse_fields(",".join(names))


@pytest.mark.parametrize(
    ("text", "at"),
    [
        (",".join(f"n{i}" for i in range(MAX_NAMES + 1)), f"n{MAX_NAMES}"),
        (",".join(["a/b"] * MAX_NAMES), "a/b"),
        ("x(" + ",".join(f"n{i}" for i in range(MAX_NAMES)) + ")", f"n{MAX_NAMES - 1})"),
        (",".join(f"a0x{i}(b{i}(c{i}))" for i in range(2500)), "b85(c85))"),
    ],
)
def test_a_list_past_the_limit_is_refused_where_the_next_name_begins(text: str, at: str) -> None:
    with pytest.raises(FieldsError, match=f"expected at most {MAX_NAMES} field names") as info:
        parse_fields(text)
    assert text[info.value.position :].startswith(at)
    assert info.value.expected == f"at most {MAX_NAMES} field names"


def test_no_type_is_made_for_a_list_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(tree: object) -> None:
        raise AssertionError("a type was generated")

    monkeypatch.setattr(typedprune, "_value", never)
    with pytest.raises(FieldsError):
        typedprune.pruner_for(",".join(f"m{i}" for i in range(MAX_NAMES + 1)))
