"""``Exchange``'s index of the response's header fields, which the steps read by lower-case
name (the deprecation step reads several per response)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.pipeline import Exchange

NAMES = st.sampled_from([b"Content-Type", b"content-type", b"ETag", b"Etag", b"Link", b"X-A"])
FIELDS = st.lists(st.tuples(NAMES, st.binary(max_size=8)), max_size=12)


def first_values(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """What the index must hold, the slow way: each name's first value, by lower-case name."""
    out: dict[bytes, bytes] = {}
    for name, value in headers:
        out.setdefault(name.lower(), value)
    return out


@given(FIELDS)
def test_the_index_holds_each_names_first_value(headers: list[tuple[bytes, bytes]]) -> None:
    ex = Exchange("GET", b"/", [], "10.0.0.1")
    ex.response_headers = headers
    expected = first_values(headers)
    assert ex.response_fields() == expected
    for name in expected:
        assert ex.response_header(name) == expected[name]
    assert ex.response_header(b"absent") is None
    assert ex.response_headers == headers  # the client's fields are not touched


@given(FIELDS, FIELDS)
def test_new_response_fields_are_indexed_again(
    first: list[tuple[bytes, bytes]], second: list[tuple[bytes, bytes]]
) -> None:
    ex = Exchange("GET", b"/", [], "10.0.0.1")
    ex.response_headers = first
    assert ex.response_fields() == first_values(first)
    ex.response_headers = second  # a step rewrote them: the old index must not answer
    assert ex.response_fields() == first_values(second)
