"""The admin API against its own document: schemathesis generates requests for every operation
``GET /openapi.json`` describes (valid ones, and ones the document says are invalid) and sends
them to a live admin listener, a throwaway ``switchback run`` process whose state the writes
may change at will. Every answer must be one the document lists (status, content type, body
schema), and none may be a 5xx."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import aiohttp
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import TOKEN, StartProxy
from tests.integration.test_status_page import DEPRECATIONS

# Per operation and mode: enough to catch drift, quick enough for make test; set
# SWITCHBACK_API_EXAMPLES=500 for a longer hunt.
EXAMPLES = int(os.environ.get("SWITCHBACK_API_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def run_schemathesis(url: str) -> tuple[set[tuple[str, str]], list[str]]:
    """Every operation of the document at ``url``, and the failures found (blocking: run it in
    a thread)."""
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    schema.config.base_url = url
    seen: set[tuple[str, str]] = set()
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        seen.add((operation.method.upper(), operation.path))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _exercise(operation, mode, url)
            except Unsatisfiable:
                pass  # nothing to get wrong: no parameter or body to make invalid
            except (Exception, BaseExceptionGroup) as exc:  # note it; test the other operations
                failures.append(f"{operation.method.upper()} {operation.path} ({mode}): {exc}")
    return seen, failures


def _exercise(operation: Any, mode: GenerationMode, url: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        case.call_and_validate(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS, timeout=10
        )

    check()


async def test_every_admin_route_is_described_and_answers_as_described(
    switchback_process: Any,
) -> None:
    proxy = await switchback_process({"deprecations": DEPRECATIONS, "journal": {"enabled": True}})
    async with aiohttp.ClientSession() as s:  # some traffic, so the reports have rows
        for i in range(5):
            async with s.get(proxy.url + f"/users/{i}", headers={"X-Client-Id": "web"}) as r:
                await r.read()
    seen, failures = await asyncio.to_thread(run_schemathesis, proxy.admin)
    assert not failures, "\n\n".join(failures)
    # Schemathesis leaves out the document's own path; every other operation was exercised.
    assert seen == await documented(proxy.admin) - {("GET", "/openapi.json")}


async def documented(admin: str) -> set[tuple[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(admin + "/openapi.json") as r:
        doc = await r.json()
    return {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}


async def test_the_document_describes_every_route_the_admin_listener_serves(
    switchback: StartProxy,
) -> None:
    proxy = await switchback()
    assert proxy.runtime.admin_runner is not None
    served = {
        (route.method, route.resource.canonical)
        for route in proxy.runtime.admin_runner.app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert len(served) > 20
    assert served == await documented(proxy.admin)
