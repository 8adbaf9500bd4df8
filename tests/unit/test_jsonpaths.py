import orjson
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxy.core.jsonpaths import ANY, EACH, KEY, find, parse_path


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("user.role", [(KEY, "user"), (KEY, "role")]),
        ("items[].role", [(KEY, "items"), (EACH, ""), (KEY, "role")]),
        ("data[][].id", [(KEY, "data"), (EACH, ""), (EACH, ""), (KEY, "id")]),
        ("meta.*.deprecated", [(KEY, "meta"), (ANY, ""), (KEY, "deprecated")]),
        ("[].id", [(EACH, ""), (KEY, "id")]),
        ("*[]", [(ANY, ""), (EACH, "")]),
        ('"a.b".c', [(KEY, "a.b"), (KEY, "c")]),
        ('"say \\"hi\\"".x[]', [(KEY, 'say "hi"'), (KEY, "x"), (EACH, "")]),
        ('""', [(KEY, "")]),
        ("rôle-id:v2", [(KEY, "rôle-id:v2")]),
    ],
)
def test_parse_path(text: str, steps: list[tuple[int, str]]) -> None:
    path = parse_path(text)
    assert list(path.steps) == steps
    assert str(path) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty path at position 0"),
        ("user..role", "empty segment at position 5"),
        (".role", "empty segment at position 0"),
        ("user.", "empty segment at position 5"),
        ("items[.role", "unexpected '[' at position 5"),
        ("items]", "unexpected ']' at position 5"),
        ("items[0]", "unexpected '[' at position 5"),
        ("a*", "unexpected '*' at position 1"),
        ("*a", "unexpected 'a' at position 1"),
        ('"a.b', "unterminated quoted key at position 0"),
        ('x."a"b', "unexpected 'b' at position 5"),
        ("a.\ud800", "unencodable character at position 2"),
    ],
)
def test_parse_path_errors_name_the_position(text: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_path(text)
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("path", "value", "count"),
    [
        ("user.role", {"user": {"role": "admin"}}, 1),
        ("user.role", {"user": {"role": None}}, 1),  # sent as null: still sent
        ("user.role", {"user": {"roles": []}}, 0),
        ("user.role", {"user": None}, 0),
        ("user.role", {"user": ["role"]}, 0),  # type mismatch: no match, no error
        ("user.role", "role", 0),
        ("items[].role", {"items": [{"role": 1}, {}, {"role": None}, 7, None]}, 2),
        ("items[].role", {"items": {"role": 1}}, 0),  # an object is not an array
        ("data[][].id", {"data": [[{"id": 1}, {"id": 2}], [], [{"x": 1}], "s", [{"id": 3}]]}, 3),
        ("meta.*.deprecated", {"meta": {"a": {"deprecated": True}, "b": {}, "c": 1}}, 1),
        ("meta.*", {"meta": {"a": 1, "b": None}}, 2),
        ("meta.*", {"meta": [1, 2]}, 0),  # * is any key of an object, not an array index
        ("[].id", [{"id": 1}, {"id": 2}, {}], 2),
        ("[].id", {"id": 1}, 0),
        ("items[]", {"items": [1, 2, 3]}, 3),
        ('"a.b".c', {"a.b": {"c": 0}, "a": {"b": {"c": 0}}}, 1),
        ("a.b", {"a": {"b": {"a": {"b": 1}}}}, 1),
    ],
)
def test_find(path: str, value: object, count: int) -> None:
    assert find(value, parse_path(path)) == count


def test_find_limit_stops_counting() -> None:
    value = {"items": [{"role": i} for i in range(100)]}
    assert find(value, parse_path("items[].role"), limit=1) == 1
    assert find(value, parse_path("items[].role"), limit=5) == 5
    assert find(value, parse_path("items[].role")) == 100


def test_find_deeply_nested_input_uses_no_recursion() -> None:
    depth = 100_000  # far past Python's recursion limit
    value: object = {"x": 1}
    for _ in range(depth):
        value = [value]
    assert find(value, parse_path("[]" * depth + ".x")) == 1
    assert find(value, parse_path("[]" * depth + ".y")) == 0


def test_key_names_are_json_encoded_with_quotes() -> None:
    path = parse_path('items[].role.*."a\\"b".é')
    assert path.key_names() == {b'"items"', b'"role"', b'"a\\"b"', '"é"'.encode()}
    assert parse_path("[].*").key_names() == frozenset()


@pytest.mark.parametrize(
    ("path", "raw", "escaped", "may"),
    [
        ("user.role", b'{"user":{"role":1}}', False, True),
        ("user.role", b'{"user":{"roles":1}}', False, False),
        ("user.role", b'{"user":{"r\\u006fle":1}}', True, True),  # an escape can hide a key
        ("a/b", b'{"a\\/b":1}', False, True),  # so can "\/" for "/"
        ("a/b", b'{"a_b":1}', False, False),
        ("[].*", b"[]", False, True),  # nothing literal: always parse
    ],
)
def test_prefilter(path: str, raw: bytes, escaped: bool, may: bool) -> None:
    assert parse_path(path).may_occur_in(raw, escaped) is may


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats()
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=30,
)
path_texts = st.lists(
    st.tuples(st.sampled_from(["a", "b", "*", "", '"a.b"']), st.integers(0, 2)).filter(
        lambda seg: seg != ("", 0)
    ),
    min_size=1,
    max_size=5,
).map(lambda segs: ".".join(name + "[]" * n for name, n in segs))


@given(value=json_values, text=path_texts)
def test_find_never_raises_and_agrees_with_the_prefilter(value: object, text: str) -> None:
    path = parse_path(text)
    count = find(value, path)
    assert count >= 0
    raw = orjson.dumps(value)
    if count:  # the prefilter must never rule out a body that matches
        assert path.may_occur_in(raw, b"\\u" in raw)


@given(st.text())
def test_parse_path_raises_only_value_error(text: str) -> None:
    try:
        path = parse_path(text)
    except ValueError:
        return
    assert path.steps


@given(value=json_values, text=st.text(max_size=12))
def test_find_never_raises_for_any_parsed_path(value: object, text: str) -> None:
    try:
        path = parse_path(text)
    except ValueError:
        assume(False)
        return
    count = find(value, path)
    raw = orjson.dumps(value)
    assert count == 0 or path.may_occur_in(raw, b"\\u" in raw)
