"""Removing sunset response fields (proxy.core.fieldremoval)."""

from __future__ import annotations

import gzip

import orjson
import pytest

from proxy.core.bodyinspect import accepts, encode_for
from proxy.core.fieldremoval import remove_paths
from proxy.core.jsonpaths import parse_path


def removed(body: object, *paths: str) -> object:
    out = remove_paths(orjson.dumps(body), [parse_path(p) for p in paths])
    return None if out is None else orjson.loads(out)


def test_nested_keys_and_arrays() -> None:
    body = {"user": {"role": "admin", "name": "a"}, "items": [{"role": 1, "id": 1}, {"id": 2}]}
    assert removed(body, "user.role", "items[].role") == {
        "user": {"name": "a"},
        "items": [{"id": 1}, {"id": 2}],
    }


def test_every_key_and_every_element_and_a_top_level_array() -> None:
    assert removed({"meta": {"a": 1, "b": 2}, "tags": [1, 2]}, "meta.*", "tags[]") == {
        "meta": {},
        "tags": [],
    }
    assert removed([{"id": 1, "x": 2}], "[].x") == [{"id": 1}]


def test_nothing_to_remove_or_not_json_leaves_the_body_alone() -> None:
    assert removed({"user": {"name": "a"}}, "user.role") is None
    assert removed({"user": "text"}, "user.role") is None  # a type mismatch is skipped
    assert remove_paths(b"{not json", [parse_path("a")]) is None


def test_re_encoded_as_the_app_did_when_the_client_accepts_it() -> None:
    body, coding = encode_for(b'{"a":1}', b"gzip", b"gzip, deflate")
    assert coding == b"gzip" and gzip.decompress(body) == b'{"a":1}'
    assert encode_for(b'{"a":1}', b"gzip", b"br") == (b'{"a":1}', None)
    assert encode_for(b'{"a":1}', b"compress", b"*") == (b'{"a":1}', None)
    assert encode_for(b'{"a":1}', None, b"gzip") == (b'{"a":1}', None)


@pytest.mark.parametrize(
    ("header", "ok"),
    [(b"gzip", True), (b"GZIP;q=0.5", True), (b"gzip;q=0", False), (b"*", True), (None, False)],
)
def test_accept_encoding(header: bytes | None, ok: bool) -> None:
    assert accepts(header, b"gzip") is ok


def test_only_what_is_removed_changes_every_other_value_keeps_its_text() -> None:
    def out(body: bytes, *paths: str) -> bytes | None:
        return remove_paths(body, [parse_path(p) for p in paths])

    big = b'{"id":123456789012345678901234567890,"user":{"name":"Ada","role":"admin"}}'
    assert out(big, "user.role") == b'{"id":123456789012345678901234567890,"user":{"name":"Ada"}}'
    assert out(b'{"score":1e400,"user":{"role":1}}', "user.role") == b'{"score":1e400,"user":{}}'
    spelled = b'{"a": 1.10, "m": {"x": {"k": [ 1E2 ], "d": 0}, "y": "\\u0041"}, "l": [[{"d": -0}]]}'
    assert out(spelled, "m.*.d", "l[][].d") == (
        b'{"a":1.10,"m":{"x":{"k":[ 1E2 ]},"y":"\\u0041"},"l":[[{}]]}'
    )
    # shared prefixes: the second path finds the container the first one opened
    assert out(b'{"u":{"a":1e999,"b":2,"c":3}}', "u.a", "u.b") == b'{"u":{"c":3}}'
    mixed = b'{"items":[{"role":1,"n":1e400},7,{"id":99999999999999999999}]}'
    assert out(mixed, "items[].role") == b'{"items":[{"n":1e400},7,{"id":99999999999999999999}]}'
    # a container of another type on the way, or a scalar body: nothing to remove
    assert out(b'{"u":[1],"v":"s"}', "u.a", "v[]", "[].x") is None
    assert out(b"12345678901234567890123", "a") is None


@pytest.mark.parametrize(
    "body",
    [b'{"a":1,}', b'{"a":NaN}', b'{"a":1} x', b'{"a":"\xff"}', b'{"a":"\\ud800"}', b"", b" "]
    + [b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}"],
)
def test_a_body_that_is_not_json_is_left_alone(body: bytes) -> None:
    assert remove_paths(body, [parse_path("a")]) is None
