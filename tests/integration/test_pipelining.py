"""Pipelined requests are each forwarded, inspected and answered as if they came alone: a
queued request's trailer fields stay trailers, its body is inspected for deprecated fields,
and a step failing on it is answered 500 without hanging the client or the proxy."""

from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from proxy.pipeline import Exchange, Pipeline, Step
from tests.integration.conftest import (
    StartProxy,
    header_values,
    raw_exchange,
    read_response,
    sample,
)
from tests.integration.releases import RecordingRelease

Response = tuple[int, list[tuple[str, str]], bytes]


async def pipelined(port: int, data: bytes, n: int, timeout: float = 5.0) -> list[Response]:
    """Send ``data`` (several requests) at once on one connection; read ``n`` responses."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return [await asyncio.wait_for(read_response(reader), timeout) for _ in range(n)]
    finally:
        writer.close()


CHUNKED_WITH_TRAILERS = (
    b"POST /b HTTP/1.1\r\nHost: app.example\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: X-Hop\r\nTrailer: Host, Authorization, X-Checksum, X-Hop\r\n\r\n"
    b"5\r\nhello\r\n0\r\n"
    b"Host: other.example\r\nAuthorization: Bearer t\r\nX-Hop: s\r\nX-Checksum: abc\r\n\r\n"
)


@pytest.mark.parametrize("before", [b"", b"GET /a HTTP/1.1\r\nHost: app.example\r\n\r\n"])
async def test_request_trailers_stay_trailers(
    switchback: StartProxy, recording: RecordingRelease, before: bytes
) -> None:
    """Alone or queued behind another request, a chunked request's trailer fields reach the
    release in its trailer section (never as header fields: a trailer ``Host`` or
    ``Authorization`` must not change how the request is routed or authorized); ``Host``,
    which cannot be a trailer, is dropped, and so is ``X-Hop``, which the head's Connection
    names (RFC 9110 section 7.6.1)."""
    proxy = await switchback({"releases": {"blue": {"url": recording.url}}})
    answers = await pipelined(proxy.port, before + CHUNKED_WITH_TRAILERS, 2 if before else 1)
    assert [a[2] for a in answers] == ([b"/a"] if before else []) + [b"/b"]
    post = recording.received[-1]
    assert (post.method, post.body) == ("POST", b"hello")
    names = [name.lower() for name, _ in post.headers]
    assert names.count(b"host") == 1 and b"authorization" not in names
    head = {name.lower(): value for name, value in post.headers}
    assert head[b"host"] == b"app.example"
    assert head[b"x-forwarded-host"] == b"app.example"
    assert post.trailers == [(b"Authorization", b"Bearer t"), (b"X-Checksum", b"abc")]


REQUEST_FIELD = [
    {
        "id": "legacy-flag",
        "request_field": "options.legacy",
        "on": "POST /orders",
        "deprecated": "2026-04-01",
    }
]
LEGACY = b'{"options": {"legacy": true}}'


def order(client: bytes, chunked: bool) -> bytes:
    if chunked:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(LEGACY), LEGACY)
        framing = b"Transfer-Encoding: chunked"
    else:
        body, framing = LEGACY, b"Content-Length: %d" % len(LEGACY)
    return (
        b"POST /orders HTTP/1.1\r\nHost: h\r\nX-Client-Id: %s\r\n"
        b"Content-Type: application/json\r\n%s\r\n\r\n%s" % (client, framing, body)
    )


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_request_field_use_is_counted_on_a_pipelined_request(
    switchback: StartProxy, chunked: bool
) -> None:
    """The same POST with a deprecated request field is counted alone, and behind a GET on
    the same connection, and both answers carry the Deprecation header: an undercount here
    would make the element look safe to remove."""
    proxy = await switchback({"deprecations": REQUEST_FIELD})
    alone = await pipelined(proxy.port, order(b"alone", chunked), 1)
    queued = await pipelined(
        proxy.port,
        b"GET /users/1 HTTP/1.1\r\nHost: h\r\nX-Client-Id: queued\r\n\r\n"
        + order(b"queued", chunked),
        2,
    )
    for status, headers, _ in (alone[0], queued[1]):
        assert status == 200
        assert len(header_values(headers, "Deprecation")) == 1
    assert header_values(queued[0][1], "Deprecation") == []
    samples = await proxy.metrics()
    for client in ("alone", "queued"):
        assert (
            sample(
                samples,
                "switchback_deprecated_total",
                element="legacy-flag",
                kind="use",
                client=client,
            )
            == 1
        )


class FailsOn(Step):
    """A step with a bug that shows only on one path, in one hook."""

    name = "fails-on"

    def __init__(self, hook: str, path: str) -> None:
        self.hook, self.path = hook, path

    def _maybe_fail(self, ex: Exchange, hook: str) -> None:
        if hook == self.hook and ex.path == self.path:
            raise RuntimeError(f"step failed in {hook}")

    def request(self, ex: Exchange) -> None:
        self._maybe_fail(ex, "request")

    def response_head(self, ex: Exchange) -> None:
        if self.hook == "response_body" and ex.path == self.path:
            ex.want_response_body = True  # held, so that the failing hook sees it
        self._maybe_fail(ex, "response_head")

    def response_body(self, ex: Exchange, body: bytes) -> None:
        self._maybe_fail(ex, "response_body")

    def respond(self, ex: Exchange) -> None:
        self._maybe_fail(ex, "respond")

    def done(self, ex: Exchange) -> None:
        self._maybe_fail(ex, "done")


@pytest.mark.parametrize("hook", ["request", "response_head", "response_body", "respond"])
async def test_a_step_failing_on_a_queued_request_answers_500(
    switchback: StartProxy, caplog: pytest.LogCaptureFixture, hook: str
) -> None:
    """The failing request, queued behind another, gets a JSON 500; the one before it its
    own answer; the failure is logged; timeouts still fire afterwards (the sweep lives on)
    and the proxy serves other clients."""
    proxy = await switchback({"upstream": {"response_timeout": 0.5}})
    runtime = proxy.runtime
    runtime.pipeline = Pipeline([FailsOn(hook, "/explode"), *runtime.pipeline.steps])
    with caplog.at_level(logging.ERROR):
        answers = await pipelined(
            proxy.port,
            b"GET /users/1 HTTP/1.1\r\nHost: h\r\n\r\nGET /explode HTTP/1.1\r\nHost: h\r\n\r\n",
            2,
        )
    assert answers[0][0] == 200 and orjson.loads(answers[0][2])["user"]["id"] == "1"
    status, headers, body = answers[1]
    assert status == 500
    assert orjson.loads(body)["error"] == "internal_error"
    assert b"Traceback" not in body and b"step failed" not in body
    assert header_values(headers, "Connection") == ["close"]
    assert any(f"step failed in {hook}" in (r.exc_text or "") for r in caplog.records)
    # The sweep still runs: a slow release is still answered 504 in time.
    status, _, body = await raw_exchange(proxy.port, b"GET /slow/3 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (status, orjson.loads(body)["error"]) == (504, "upstream_timeout")
    assert (await raw_exchange(proxy.port, b"GET /fine HTTP/1.1\r\nHost: h\r\n\r\n"))[0] == 200


async def test_a_step_failing_when_the_exchange_is_done_does_not_hang_the_connection(
    switchback: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in a ``done`` hook (metrics, statistics) is logged; the answer was already
    sent, and the keep-alive connection goes on with the next pipelined request."""
    proxy = await switchback()
    runtime = proxy.runtime
    runtime.pipeline = Pipeline([FailsOn("done", "/explode"), *runtime.pipeline.steps])
    with caplog.at_level(logging.ERROR):
        answers = await pipelined(
            proxy.port,
            b"GET /explode HTTP/1.1\r\nHost: h\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: h\r\n\r\n",
            2,
        )
    assert [a[0] for a in answers] == [200, 200]
    assert orjson.loads(answers[1][2])["user"]["id"] == "2"
    assert any("step failed in done" in (r.exc_text or "") for r in caplog.records)
