"""Two Switchback replicas on one PostgreSQL ledger: the same fleet-wide report from either,
``--fail-if-used`` failing on one replica for an element used only through the other, the
spool gauge on /metrics, and a verdict held while another replica's rows are not delivered.

The report is read as a user reads it: ``GET /deprecations`` and ``switchback report``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from proxy import cli
from tests.integration.conftest import Proxy, StartProxy
from tests.integration.helpers_rollout import edit_config
from tests.integration.helpers_telemetry import TelemetryApp, fetch, running_app

DEPRECATIONS: list[dict[str, Any]] = [
    {"id": "user-role", "field": "user.role", "on": "GET /users/{id}", "deprecated": "2026-06-01"},
    {"id": "users-v0", "endpoint": "GET /v0/users/{id}", "deprecated": "2026-03-01"},
    {"id": "sort-by", "param": "sort_by", "on": "GET /users", "deprecated": "2026-05-01"},
]
WAIT = 20.0  # seconds: the most a report may take to show a flushed row


@pytest.fixture
async def app() -> AsyncIterator[TelemetryApp]:
    async with running_app() as app:
        yield app


def config(app: TelemetryApp, url: str, replica: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "releases": {"blue": {"url": app.url}},
        "deprecations": DEPRECATIONS,
        "state_dir": str(tmp_path / replica),
        "telemetry": {"ledger": url, "replica": replica, "flush_seconds": 0.1},
    }


async def report(proxy: Proxy) -> dict[str, Any]:
    status, body = await proxy.admin_call("GET", "/deprecations")
    assert status == 200, body
    return body


def clients(body: dict[str, Any], element: str) -> dict[str, int]:
    (e,) = (e for e in body["elements"] if e["id"] == element)
    return {c["client"]: c["count"] for c in e["clients"]}


async def until(proxy: Proxy, check: Any) -> dict[str, Any]:
    """The first report from ``proxy`` for which ``check(report)`` holds (bounded wait)."""
    deadline = time.monotonic() + WAIT
    while True:
        body = await report(proxy)
        if check(body) or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.05)  # polling the report for the flushed rows, bounded


async def gate(proxy: Proxy, capsys: pytest.CaptureFixture[str], element: str) -> tuple[int, str]:
    capsys.readouterr()
    args = ["report", "--admin", proxy.admin, "--token", "test-token", "--fail-if-used", element]
    code = await asyncio.to_thread(cli.main, args)
    return code, capsys.readouterr().out


async def test_either_replica_gives_the_fleet_answer_and_fails_the_gate_for_the_other(
    switchback: StartProxy,
    app: TelemetryApp,
    pg_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = await switchback(config(app, pg_url, "r1", tmp_path), name="r1.yaml")
    two = await switchback(config(app, pg_url, "r2", tmp_path), name="r2.yaml")
    assert (await fetch(one.url, "/users/1", client="ios")).status == 200
    assert (await fetch(two.url, "/v0/users/7", client="partner-batch")).status == 200
    assert (await fetch(two.url, "/users/2", client="android")).status == 200

    def complete(b: dict[str, Any]) -> bool:  # each replica has delivered its rows
        return clients(b, "user-role") == {"ios": 1, "android": 1} and bool(clients(b, "users-v0"))

    body = await until(one, complete)
    assert clients(body, "users-v0") == {"partner-batch": 1}  # seen only through r2
    assert clients(body, "user-role") == {"ios": 1, "android": 1}
    assert body["fleet"]["contributing"] == 2
    assert body["fleet"]["replicas"] == ["r1", "r2"]
    from_two = await until(two, complete)
    assert [e["clients"] for e in from_two["elements"]] == [e["clients"] for e in body["elements"]]

    code, out = await gate(one, capsys, "users-v0")  # asked of r1, used only through r2
    assert code == 3
    assert "partner-batch" in out and "2 replica(s) contributed" in out
    assert (await gate(one, capsys, "sort-by"))[0] == 0  # nobody, on any replica

    # What cannot wait for the database (the shadow report's field usage) has the fleet too.
    assert clients(one.runtime.telemetry.report(None), "users-v0") == {"partner-batch": 1}

    samples = await one.metrics()
    assert samples[("switchback_ledger_spool_rows", frozenset())] == 0


async def test_a_replicas_undelivered_rows_hold_a_safe_verdict(
    switchback: StartProxy,
    app: TelemetryApp,
    pg_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = {"id": "old-param", "param": "legacy", "deprecated": "2025-01-01"}
    cfg = config(app, pg_url, "r1", tmp_path)
    cfg["deprecations"] = [old]
    cfg["telemetry"]["report_days"] = 1
    one = await switchback(cfg, name="r1.yaml")
    await one.runtime.telemetry.ledger.flush()  # type: ignore[union-attr]
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        # Observed for two days, by r1; a third replica last wrote with rows still spooled.
        day = int(time.time() // 86_400)
        await conn.execute("UPDATE meta SET value = %s", (str(time.time() - 3 * 86_400),))
        await conn.execute("UPDATE elements SET first_configured = 0")
        await conn.execute(
            "INSERT INTO watched VALUES ('old-param', %s, false) ON CONFLICT DO NOTHING",
            (day - 1,),
        )
        body = await report(one)
        (element,) = body["elements"]
        assert element["verdict"] == "safe to remove"
        await conn.execute(
            "INSERT INTO replicas VALUES ('r3', 'x', 9, %s, 12, '{old-param}')", (time.time(),)
        )
    body = await report(one)
    (element,) = body["elements"]
    assert element["verdict"] == "unknown: rows not yet delivered (replica r3)"
    assert element["safe"] is False
    assert body["fleet"]["undelivered"] == {"r3": 12} and body["fleet"]["complete"] is False
    code, out = await gate(one, capsys, "old-param")
    assert code == 3
    assert "r3: 12 row(s) not yet delivered" in out


async def test_moving_to_another_ledger_needs_a_restart(
    switchback: StartProxy, app: TelemetryApp, pg_url: str, tmp_path: Path
) -> None:
    proxy = await switchback(config(app, pg_url, "r1", tmp_path), name="r1.yaml")
    edit_config(proxy.config_path, {"telemetry": {"ledger": "postgresql://u:pw@elsewhere/db"}})
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 400
    assert body["error"] == f"{proxy.config_path}: telemetry.ledger: changing it needs a restart"
    status, state = await proxy.admin_call("GET", "/status")
    assert (
        status == 200
        and state["ledger"]["database"] == pg_url
        and state["ledger"]["replica"] == "r1"
    )
