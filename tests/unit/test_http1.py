"""The heads Switchback writes: hop-by-hop fields never cross, whatever order they come in.

``request_head`` and ``response_head`` drop them in one pass over the fields; these properties
hold them to the definition (``hop_by_hop``: the fixed set plus every field a Connection header
names), also when a named field comes before the Connection header that names it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.http import http1
from proxy.pipeline import Exchange

NAMES = [b"Accept", b"X-Secret", b"x-trace", b"Keep-Alive", b"TE", b"Upgrade", b"Trailer"]
CONNECTION_VALUES = [
    b"keep-alive",
    b"close",
    b"X-Secret",
    b"close, x-trace",
    b"Keep-Alive, TE",
    b"",
    b" , ",
]

fields = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(NAMES), st.sampled_from([b"1", b"a b", b""])),
        st.tuples(
            st.sampled_from([b"Connection", b"connection"]), st.sampled_from(CONNECTION_VALUES)
        ),
    ),
    max_size=8,
)


def kept(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    drop = http1.hop_by_hop(headers)
    return [b"%s: %s" % (n, v) for n, v in headers if n.lower() not in drop]


def lines(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")


@given(fields)
def test_a_request_head_keeps_exactly_the_end_to_end_fields(
    headers: list[tuple[bytes, bytes]],
) -> None:
    ex = Exchange("GET", b"/a?b", headers, "10.0.0.1")
    out = lines(http1.request_head(ex, b"10.0.0.1", False, False, None))
    assert out[0] == b"GET /a?b HTTP/1.1"
    end = next(i for i, line in enumerate(out) if line.startswith(b"X-Forwarded-For: "))
    assert out[1:end] == kept(headers)


@given(fields)
def test_a_response_head_keeps_exactly_the_end_to_end_fields(
    headers: list[tuple[bytes, bytes]],
) -> None:
    ex = Exchange("GET", b"/", [], "10.0.0.1")
    ex.status = 200
    ex.response_headers = [*headers, (b"Content-Length", b"0")]
    head, chunked, close = http1.response_head(ex, b"OK", False, False, False, False)
    out = lines(head)
    assert out[0] == b"HTTP/1.1 200 OK"
    assert out[1:-2] == [*kept(headers), b"Content-Length: 0"]
    assert (chunked, close) == (False, False)


def test_a_field_named_before_its_connection_header_is_dropped_too() -> None:
    ex = Exchange("GET", b"/", [], "10.0.0.1")
    ex.status = 200
    ex.response_headers = [
        (b"X-Secret", b"1"),
        (b"Connection", b"X-Secret"),
        (b"Content-Length", b"0"),
    ]
    head, _, _ = http1.response_head(ex, b"OK", False, False, False, False)
    assert b"X-Secret" not in head
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
