"""The usage ledger and the report built on it: through a restart, its verdicts, the CI gate.

The report is read as a user reads it: the admin API's ``GET /deprecations`` and the
``switchback report`` command run against the live admin listener.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy import cli
from proxy.deprecation.ledger import Ledger
from tests.integration.conftest import Proxy, StartProxy
from tests.integration.helpers_telemetry import TelemetryApp, counts, fetch, running_app

DAY = 86_400.0
DEPRECATIONS: list[dict[str, Any]] = [
    {"id": "user-role", "field": "user.role", "on": "GET /users/{id}", "deprecated": "2026-06-01"},
    {"id": "users-v0", "endpoint": "GET /v0/users/{id}", "deprecated": "2026-03-01"},
    {"id": "sort-by", "param": "sort_by", "on": "GET /users", "deprecated": "2026-05-01"},
]
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
async def app() -> AsyncIterator[TelemetryApp]:
    async with running_app() as app:
        yield app


def config(app: TelemetryApp, deprecations: list[dict[str, Any]] = DEPRECATIONS) -> dict[str, Any]:
    return {"releases": {"blue": {"url": app.url}}, "deprecations": deprecations}


async def report(proxy: Proxy, days: int | None = None) -> dict[str, dict[str, Any]]:
    """The admin API's report, by element id."""
    path = "/deprecations" if days is None else f"/deprecations?days={days}"
    status, body = await proxy.admin_call("GET", path)
    assert status == 200
    return {e["id"]: e for e in body["elements"]}


def by_client(element: dict[str, Any]) -> dict[str, int]:
    return {c["client"]: c["count"] for c in element["clients"]}


async def run_cli(*args: str) -> int:
    """``switchback <args>`` in a worker thread (it makes blocking HTTP calls)."""
    return await asyncio.to_thread(cli.main, list(args))


async def test_the_ledger_keeps_clients_and_counts_across_a_restart(
    switchback: StartProxy, app: TelemetryApp
) -> None:
    first = await switchback(config(app))
    for client, path in [
        ("alpha", "/users/1"),
        ("alpha", "/users/2"),
        ("alpha", "/users/3"),
        ("beta", "/users/1"),
        ("beta", "/v0/users/9"),
    ]:
        assert (await fetch(first.url, path, client=client)).status == 200
    before = await report(first)
    await first.runtime.stop()  # writes what the ledger holds in memory

    second = await switchback(config(app), name="second.yaml")  # the same state_dir
    assert counts(await second.metrics()) == {}  # a new process: its metrics start at zero
    after = await report(second)
    assert by_client(after["user-role"]) == {"alpha": 3, "beta": 1}
    assert by_client(after["users-v0"]) == {"beta": 1}
    assert by_client(after["sort-by"]) == {}
    for element in ("user-role", "users-v0"):
        assert after[element]["clients"] == before[element]["clients"]
        assert after[element]["verdict"] == before[element]["verdict"]
        assert after[element]["observed_since_unix"] == before[element]["observed_since_unix"]

    # New traffic adds to what the first process recorded.
    await fetch(second.url, "/users/1", client="alpha")
    assert by_client((await report(second))["user-role"]) == {"alpha": 4, "beta": 1}


async def test_the_report_names_the_clients_in_use_and_what_is_not_known_yet(
    switchback: StartProxy, app: TelemetryApp, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = await switchback(config(app))
    started = time.time()
    await fetch(proxy.url, "/users/1", client="alpha")
    await fetch(proxy.url, "/users/2", client="alpha")
    between = time.time()
    await fetch(proxy.url, "/users/3", client="beta")
    ended = time.time()

    elements = await report(proxy)
    role = elements["user-role"]
    assert role["verdict"] == "in use: 2 clients"
    assert role["safe"] is False
    assert [(c["client"], c["count"], c["kinds"]) for c in role["clients"]] == [
        ("beta", 1, ["exposure"]),  # the most recent first
        ("alpha", 2, ["exposure"]),
    ]
    beta, alpha = role["clients"]
    assert started <= alpha["first_seen_unix"] <= alpha["last_seen_unix"] <= between
    assert between <= beta["last_seen_unix"] <= ended
    for c in (alpha, beta):
        assert ISO.match(c["last_seen"])
        when = dt.datetime.fromtimestamp(c["last_seen_unix"], dt.UTC)
        assert c["last_seen"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")

    # Watched since this proxy started, moments ago: nobody used them, but it is too soon.
    for element in ("users-v0", "sort-by"):
        assert elements[element]["clients"] == []
        assert elements[element]["safe"] is False
        assert elements[element]["verdict"] == "unknown: observed for only 0.0 days"

    # The command shows the same verdicts and clients.
    capsys.readouterr()
    assert await run_cli("report", "--admin", proxy.admin) == 0
    text = capsys.readouterr().out
    for element in elements.values():
        lines = [ln for ln in text.splitlines() if ln.startswith(element["id"] + " ")]
        assert lines and all(ln.endswith(element["verdict"]) for ln in lines), lines
    assert re.search(rf"^\s+beta\s+1\s+exposure\s+{beta['last_seen']}$", text, re.M)
    assert re.search(rf"^\s+alpha\s+2\s+exposure\s+{alpha['last_seen']}$", text, re.M)


def old_ledger(
    state_dir: Path, ids: list[str], since: float, down: tuple[float, float] | None = None
) -> Ledger:
    """A ledger file as a proxy that has watched ``ids`` since ``since`` would have left it,
    running every day except those in ``down`` (start, end)."""
    path = state_dir / "ledger.sqlite3"
    ledger = Ledger(str(path), retention_days=400, now=since)
    ledger.register_elements(ids, since)
    day = since
    while day < time.time():
        if down is None or not down[0] <= day < down[1]:
            ledger.watch(ids, day)
        day += DAY
    return ledger


async def test_an_element_nobody_touched_for_the_whole_window_is_safe_to_remove(
    switchback: StartProxy, app: TelemetryApp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    ledger = old_ledger(tmp_path / "state", ["user-role", "sort-by"], now - 45 * DAY)
    ledger.record("sort-by", "use", "nightly-job", now - 35 * DAY)  # before the 30-day window
    await ledger.close()
    newer = {"id": "item-role", "field": "items[].role", "deprecated": "2026-06-01"}
    proxy = await switchback(config(app, [*DEPRECATIONS[::2], newer]))

    elements = await report(proxy)
    assert elements["user-role"]["verdict"] == "safe to remove"
    assert elements["user-role"]["safe"] is True
    assert elements["user-role"]["observed_days"] >= 30
    assert elements["sort-by"]["verdict"] == "safe to remove"
    assert elements["item-role"]["verdict"] == "unknown: observed for only 0.0 days"  # just added

    # Over a window that reaches back to the nightly job, sort_by is still in use.
    wider = await report(proxy, days=40)
    assert wider["sort-by"]["verdict"] == "in use: 1 client"
    assert by_client(wider["sort-by"]) == {"nightly-job": 1}
    assert wider["user-role"]["verdict"] == "safe to remove"

    capsys.readouterr()
    assert await run_cli("report", "--admin", proxy.admin, "--fail-if-used", "sort-by") == 0
    gate = ["report", "--admin", proxy.admin, "--days", "40", "--fail-if-used", "sort-by"]
    assert await run_cli(*gate) == 3
    text = capsys.readouterr().out
    assert "safe to remove" in text and "in use: 1 client" in text
    # The stricter gate passes on the verdict only: not on an element added today.
    strict = ["report", "--admin", proxy.admin, "--fail-unless-safe"]
    assert await run_cli(*strict, "sort-by") == 0
    assert await run_cli(*strict, "item-role") == 4
    assert "unknown: observed for only 0.0 days" in capsys.readouterr().out


async def test_days_switchback_was_down_do_not_count_as_observed(
    switchback: StartProxy, app: TelemetryApp, tmp_path: Path
) -> None:
    now = time.time()
    # Watching since 45 days ago, but down from 25 days ago until 10 days ago.
    ledger = old_ledger(
        tmp_path / "state", ["user-role"], now - 45 * DAY, down=(now - 25 * DAY, now - 10 * DAY)
    )
    await ledger.close()
    proxy = await switchback(config(app, DEPRECATIONS[:1]))

    element = (await report(proxy))["user-role"]
    assert element["safe"] is False
    assert element["verdict"].startswith("unknown: observed for only")
    assert 14 <= element["observed_days"] <= 17  # 5 days before the gap, 10-11 after
    assert (await report(proxy, days=10))["user-role"]["verdict"] == "safe to remove"


async def test_report_fail_if_used_gates_a_removal_in_ci(
    switchback: StartProxy, app: TelemetryApp, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = await switchback(config(app))
    await fetch(proxy.url, "/users/1", client="mobile-ios")
    await fetch(proxy.url, "/v0/users/1", client="mobile-ios")

    async def gate(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await run_cli("report", "--admin", proxy.admin, *args)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await gate("--fail-if-used", "user-role")
    assert code == 3
    assert "mobile-ios" in out
    assert (await gate("--fail-if-used", "user.role"))[0] == 3  # the element's path works too
    assert (await gate("--fail-if-used", "GET /v0/users/{id}"))[0] == 3
    assert (await gate("--fail-if-used", "sort-by"))[0] == 0  # nobody sent sort_by
    code, out, err = await gate("--fail-if-used", "no-such-element")
    assert code == 2
    assert "no-such-element" in err

    code, out, _ = await gate("--json", "--fail-if-used", "user-role")
    assert code == 3
    data = orjson.loads(out)
    assert {e["id"]: e["verdict"] for e in data["elements"]} == {
        e["id"]: e["verdict"] for e in (await report(proxy)).values()
    }
    code, out, _ = await gate("--json")
    assert code == 0
    assert orjson.loads(out)["days"] == 30  # the config's default window
