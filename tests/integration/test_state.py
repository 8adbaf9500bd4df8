"""State that survives the process: Switchback runs as a real subprocess and is killed with
SIGKILL (no drain, no shutdown hook); started again on the same state directory it carries on
with the same rollout, step and weights, and a rollback stays rolled back."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.integration.conftest import Releases, write_switchback_config
from tests.integration.helpers_rollout import (
    Load,
    Processes,
    edit_config,
    failed,
    processes_fixture,  # noqa: F401 - the processes fixture
    status_of,
    wait_for_state,
)

ROLLOUT = {
    "rollout": {"steps": [20, 50, 100], "step_seconds": 1.0, "min_requests": 5, "max_p99_ms": 5000}
}


def config_file(releases: Releases, tmp_path: Path) -> Path:
    return write_switchback_config(tmp_path / "switchback.yaml", releases, ROLLOUT)


async def test_rollout_and_rollback_survive_sigkill(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = config_file(releases, tmp_path)
    first = await processes.start(path)
    assert (await status_of(first))["source"] == "config"
    async with Load(first.url, clients=20) as load:
        code, body = await first.admin_call("POST", "/rollout")
        assert code == 200, body
        await wait_for_state(first, "ramping", 10, step=1)
    before = await status_of(first)
    assert before["weights"] == {"blue": 50.0, "green": 50.0}
    assert await first.kill() == -signal.SIGKILL
    assert failed(load.results) == []

    second = await processes.start(path)
    after = await status_of(second)
    assert after["source"] == "state"
    assert (after["stable"], after["candidate"]) == ("blue", "green")
    assert after["weights"] == before["weights"]
    assert after["rollout"] == before["rollout"]
    # The restored split is the one in force, and the rollout goes on from its step.
    async with Load(second.url, clients=20) as load:
        await load.wait_for_requests(50)
        assert {r.served_by for r in load.results} == {"blue", "green"}
        status = await wait_for_state(second, "awaiting_promotion", 10)
        assert status["weights"] == {"blue": 0.0, "green": 100.0}
        code, body = await second.admin_call("POST", "/rollback", {"reason": "smoke test"})
        assert (code, body["rollout"]["state"]) == (200, "rolled_back")
    assert failed(load.results) == []
    assert await second.kill() == -signal.SIGKILL

    third = await processes.start(path)
    status = await status_of(third)
    assert status["source"] == "state"
    assert status["weights"] == {"blue": 100.0, "green": 0.0}
    assert (status["rollout"]["state"], status["rollout"]["reason"]) == (
        "rolled_back",
        "smoke test",
    )
    async with Load(third.url, clients=20) as load:
        await load.wait_for_requests(50)
    assert {(r.status, r.served_by) for r in load.results} == {(200, "blue")}
    assert await third.terminate() == 0


async def test_promotion_survives_sigkill(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = config_file(releases, tmp_path)
    first = await processes.start(path)
    code, _ = await first.admin_call("PUT", "/traffic", {"weights": {"green": 10}})
    assert code == 200
    code, _ = await first.admin_call("POST", "/promote")
    assert code == 200
    await first.kill()

    second = await processes.start(path)
    status = await status_of(second)
    assert (status["stable"], status["candidate"]) == ("green", "blue")
    assert status["weights"] == {"blue": 0.0, "green": 100.0}
    assert status["rollout"]["state"] == "promoted"
    async with Load(second.url, clients=10) as load:
        await load.wait_for_requests(30)
    assert {(r.status, r.served_by) for r in load.results} == {(200, "green")}


async def test_split_edited_in_the_file_while_stopped_applies_when_nobody_changed_it(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = config_file(releases, tmp_path)
    first = await processes.start(path)
    assert (await status_of(first))["source"] == "config"
    assert await first.terminate() == 0
    edit_config(path, {"traffic": {"weights": {"blue": 60, "green": 40}}})

    second = await processes.start(path)
    status = await status_of(second)
    assert (status["weights"], status["source"]) == ({"blue": 60.0, "green": 40.0}, "config")
