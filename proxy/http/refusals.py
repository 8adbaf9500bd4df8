"""Every request Switchback answers itself, in one place: status, code, detail, metric reason.

Pure: each function builds a ``proxy.errors.Refused`` from the limit or timeout it enforces,
so that a client, a log line and ``switchback_rejected_total{reason}`` all say the same thing.
"""

from __future__ import annotations

from proxy.errors import Refused

INTERNAL_ERROR = Refused(500, "internal_error", "the proxy failed on this request")
HEAD_FIELDS = "request_header_fields_too_large"


def malformed(detail: str) -> Refused:
    return Refused(400, "bad_request", detail, "malformed")


def transfer_codings(headers: list[tuple[bytes, bytes]]) -> Refused:
    """The refusal of a request whose Transfer-Encoding is not one ``chunked``: 400 when
    chunked is not the last coding, once (the body's end cannot be known), else 501 for the
    codings before it (RFC 9112 section 6.1: a coding the server does not understand)."""
    value = b",".join(v for n, v in headers if n.lower() == b"transfer-encoding")
    codings = [c.strip(b" \t").lower() for c in value.split(b",")]
    codings = [c for c in codings if c]  # a list may have empty elements
    if not codings or codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
        return malformed("chunked is not the final transfer coding, once")
    coding = b", ".join(codings).decode("latin-1")
    detail = f"transfer coding {coding!r} is not supported: only chunked is"
    return Refused(501, "not_implemented", detail, "transfer_coding")


def head_too_large(limit: int) -> Refused:
    return Refused(431, HEAD_FIELDS, f"request head over {limit} bytes", "head_size")


def too_many_headers(limit: int) -> Refused:
    return Refused(431, HEAD_FIELDS, f"more than {limit} header fields", "header_count")


def target_too_long(limit: int) -> Refused:
    return Refused(414, "uri_too_long", f"request target over {limit} bytes", "target_length")


def body_too_large(limit: int) -> Refused:
    return Refused(413, "content_too_large", f"request body over {limit} bytes", "body_size")


def too_many_connections(limit: int, retry_after: int) -> Refused:
    detail = f"more than {limit} client connections"
    return Refused(503, "overloaded", detail, "max_connections", retry_after=retry_after)


def shedding(retry_after: int) -> Refused:
    detail = "the proxy is overloaded (its event loop is falling behind)"
    return Refused(503, "overloaded", detail, "loop_lag", retry_after=retry_after)


def release_overloaded(release: str, limit: int, retry_after: int) -> Refused:
    return Refused(
        503,
        "release_overloaded",
        f"{release} has {limit} requests in flight",
        "release_in_flight",
        release=release,
        retry_after=retry_after,
    )


def head_timeout(seconds: float) -> Refused:
    detail = f"the request head was not complete within {seconds:g} s"
    return Refused(408, "request_timeout", detail, "head_timeout")


def body_timeout(seconds: float) -> Refused:
    detail = f"no request body bytes for {seconds:g} s"
    return Refused(408, "request_timeout", detail, "body_timeout")
