import gzip
import tracemalloc
import zlib
from collections.abc import Callable

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.core.bodyinspect import (
    ENCODING,
    MALFORMED,
    MAX_GZIP_MEMBERS,
    SKIP_REASONS,
    TOO_LARGE,
    decoded_copy,
    is_json_content_type,
)

BODY = b'{"user": {"id": 1, "role": "admin"}, "items": [' + b'{"role": "x"},' * 200 + b"{}]}"
CAP = 1 << 20


def raw_deflate(data: bytes) -> bytes:
    stream = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return stream.compress(data) + stream.flush()


CODECS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,  # zlib-wrapped, as RFC 9110 says
    "br": brotli.compress,
}


@pytest.mark.parametrize(
    ("value", "is_json"),
    [
        (b"application/json", True),
        (b"application/json; charset=utf-8", True),
        (b"Application/JSON;charset=UTF-8", True),
        (b"  application/json  ", True),
        (b"application/problem+json", True),
        (b"application/vnd.api+json; ext=x", True),
        (b"application/+json", False),
        (b"application/jsonx", False),
        (b"application/json-seq", False),
        (b"text/json", False),
        (b"text/html", False),
        (b"application/x-ndjson", False),
        (b"application", False),
        (b"", False),
        (None, False),
    ],
)
def test_is_json_content_type(value: bytes | None, is_json: bool) -> None:
    assert is_json_content_type(value) is is_json


@pytest.mark.parametrize("header", [None, b"", b"identity", b"Identity"])
def test_identity(header: bytes | None) -> None:
    assert decoded_copy(BODY, header, CAP) == BODY


@pytest.mark.parametrize("coding", list(CODECS))
def test_round_trip(coding: str) -> None:
    body = CODECS[coding](BODY)
    assert decoded_copy(body, coding.upper().encode(), CAP) == BODY


def test_deflate_raw_as_some_servers_send_it() -> None:
    assert decoded_copy(raw_deflate(BODY), b"deflate", CAP) == BODY


@pytest.mark.parametrize(
    "codings", [["gzip", "br"], ["br", "gzip"], ["deflate", "gzip"], ["gzip", "identity", "br"]]
)
def test_stacked_encodings_are_undone_from_the_last(codings: list[str]) -> None:
    body = BODY
    for coding in codings:
        body = CODECS[coding](body) if coding in CODECS else body
    assert decoded_copy(body, ", ".join(codings).encode(), CAP) == BODY
    assert decoded_copy(body, ",".join(reversed(codings)).encode(), CAP) == MALFORMED


def test_gzip_members_one_after_the_other() -> None:
    assert decoded_copy(gzip.compress(b"[1,") + gzip.compress(b"2]"), b"gzip", CAP) == b"[1,2]"


def test_gzip_members_are_bounded_in_number() -> None:
    """Empty gzip members before the real one: up to ``MAX_GZIP_MEMBERS`` in all the body is
    decoded; beyond, it is not inspected (150,000 of them, 3 MB, held the loop for 5 s while
    each member was handed a copy of the rest of the body)."""
    empty, real = gzip.compress(b"", mtime=0), gzip.compress(b'{"a": 1}', mtime=0)
    at_limit = empty * (MAX_GZIP_MEMBERS - 1) + real
    assert decoded_copy(at_limit, b"gzip", CAP) == b'{"a": 1}'
    assert decoded_copy(empty * MAX_GZIP_MEMBERS + real, b"gzip", CAP) == TOO_LARGE
    assert decoded_copy(empty * 150_000 + real, b"gzip", 8 * 1024 * 1024) == TOO_LARGE


def test_a_large_member_is_read_whole_and_what_follows_it_is_checked() -> None:
    """A member far larger than the first input window, then another, then garbage."""
    big = gzip.compress(BODY * 50, mtime=0)
    assert decoded_copy(big + gzip.compress(b"!"), b"gzip", CAP) == BODY * 50 + b"!"
    assert decoded_copy(big + b"garbage", b"gzip", CAP) == MALFORMED
    assert decoded_copy(big[:-1], b"gzip", CAP) == MALFORMED  # truncated
    assert decoded_copy(zlib.compress(BODY * 50) + b"x", b"deflate", CAP) == MALFORMED


def test_too_large_body_is_not_even_decoded() -> None:
    assert decoded_copy(BODY, None, len(BODY)) == BODY
    assert decoded_copy(BODY, None, len(BODY) - 1) == TOO_LARGE
    assert decoded_copy(gzip.compress(BODY), b"gzip", len(BODY) - 1) == TOO_LARGE


@pytest.mark.parametrize("coding", list(CODECS) + ["deflate-raw"])
def test_decompressed_size_is_capped_exactly(coding: str) -> None:
    compress = raw_deflate if coding == "deflate-raw" else CODECS[coding]
    header = b"deflate" if coding == "deflate-raw" else coding.encode()
    body = compress(BODY)
    assert decoded_copy(body, header, len(BODY)) == BODY
    assert decoded_copy(body, header, len(BODY) - 1) == TOO_LARGE


def bomb(coding: str, size: int = 64 << 20) -> bytes:
    """``size`` bytes of JSON (an array of spaces), compressed without holding them in memory."""
    chunk = b" " * (1 << 20)
    if coding == "br":
        br = brotli.Compressor(quality=1)
        parts = [br.process(b"[")] + [br.process(chunk) for _ in range(size >> 20)]
        return b"".join([*parts, br.process(b"]"), br.finish()])
    z = zlib.compressobj(wbits=31 if coding == "gzip" else 15)
    parts = [z.compress(b"[")] + [z.compress(chunk) for _ in range(size >> 20)]
    return b"".join(parts) + z.compress(b"]") + z.flush()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("header", "make"),
    [
        pytest.param(b"gzip", lambda: bomb("gzip"), id="gzip"),
        pytest.param(b"deflate", lambda: bomb("deflate"), id="deflate"),
        pytest.param(b"br", lambda: bomb("br"), id="br"),
        pytest.param(b"gzip, br", lambda: brotli.compress(bomb("gzip"), quality=1), id="gzip-br"),
    ],
)
def test_decompression_bomb_costs_no_more_than_the_cap(
    header: bytes, make: Callable[[], bytes]
) -> None:
    body = make()  # 64 MiB of JSON
    assert len(body) < CAP
    tracemalloc.start()
    try:
        assert decoded_copy(body, header, CAP) == TOO_LARGE
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * CAP, peak


@pytest.mark.parametrize(
    ("body", "header"),
    [
        (gzip.compress(BODY)[:-8], b"gzip"),  # truncated: no trailer
        (gzip.compress(BODY)[:40], b"gzip"),
        (gzip.compress(BODY) + b"junk", b"gzip"),
        (b"not gzip at all", b"gzip"),
        (zlib.compress(BODY)[:-4], b"deflate"),
        (zlib.compress(BODY) + b"x", b"deflate"),
        (b"\xff" * 20, b"deflate"),
        (brotli.compress(BODY)[:-3], b"br"),
        (brotli.compress(BODY) + b"x", b"br"),
        (b"\xff" * 20, b"br"),
        (b"", b"gzip"),
        (b"", b"br"),
        (brotli.compress(BODY), b"gzip, br"),  # the inner gzip is not gzip
    ],
)
def test_corrupt_data_is_malformed(body: bytes, header: bytes) -> None:
    assert decoded_copy(body, header, CAP) == MALFORMED


@pytest.mark.parametrize("header", [b"compress", b"zstd", b"gzip, zstd", b"zstd, gzip", b"\xff"])
def test_unknown_encoding(header: bytes) -> None:
    assert decoded_copy(gzip.compress(BODY), header, CAP) == ENCODING


encodings = (
    st.lists(
        st.sampled_from(["gzip", "x-gzip", "deflate", "br", "identity", "zstd", ""]), max_size=3
    ).map(lambda names: ", ".join(names).encode())
    | st.binary(max_size=12)
    | st.none()
)


@given(body=st.binary(max_size=256), header=encodings, cap=st.integers(0, 512))
def test_decoded_copy_never_raises(body: bytes, header: bytes | None, cap: int) -> None:
    result = decoded_copy(body, header, cap)
    assert isinstance(result, bytes) and len(result) <= cap or result in SKIP_REASONS


@given(body=st.binary(max_size=512), coding=st.sampled_from(list(CODECS)))
def test_round_trip_any_bytes(body: bytes, coding: str) -> None:
    assert decoded_copy(CODECS[coding](body), coding.encode(), CAP) == body
