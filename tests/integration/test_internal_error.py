"""A step that fails on a request is the proxy's fault: the client gets a JSON 500 (not a 400
blaming it), the failure is logged with its traceback, and the proxy keeps serving."""

from __future__ import annotations

import logging

import orjson
import pytest

from proxy.pipeline import Exchange, Pipeline, Step
from tests.integration.conftest import StartProxy, raw_exchange


class FailingStep(Step):
    name = "failing"

    def request(self, ex: Exchange) -> None:
        if ex.path == "/explode":
            raise RuntimeError("step failed")


async def test_a_failing_step_answers_500_and_is_logged(
    switchback: StartProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy = await switchback()
    runtime = proxy.runtime
    runtime.pipeline = Pipeline([FailingStep(), *runtime.pipeline.steps])
    with caplog.at_level(logging.ERROR, logger="switchback.listener"):
        status, _, body = await raw_exchange(
            proxy.port, b"GET /explode HTTP/1.1\r\nHost: t\r\n\r\n"
        )
    assert status == 500
    assert orjson.loads(body)["error"] == "internal_error"
    assert b"Traceback" not in body and b"step failed" not in body
    assert any("step failed" in (r.exc_text or "") or r.exc_info for r in caplog.records)
    status, _, _ = await raw_exchange(proxy.port, b"GET /fine HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 200
