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
