"""Progressive rollout with real traffic: healthy traffic moves green up step by step to
awaiting promotion (or promotes it), no data holds the step, promotion makes green the stable
release and frees blue's slot for the next release, illegal moves are refused with 409 and bad
input with 400, and the ``switchback`` CLI drives all of it against a running proxy."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from proxy.cli.commands import main
from tests.integration.conftest import Proxy, StartProxy, sample
from tests.integration.helpers_rollout import (
    Load,
    Result,
    edit_config,
    failed,
    green_share,
    poll,
    read_config,
    status_of,
    wait_for_state,
    wait_until,
    write_config,
)
from tests.integration.releases import start_release

# A p99 limit far above anything healthy: these tests are about stepping, and a loaded test
# machine can stall the event loop long enough to trip the 500 ms default on a few requests.
FAST = {
    "rollout": {"steps": [20, 50, 100], "step_seconds": 1.0, "min_requests": 10, "max_p99_ms": 5000}
}


class Timeline:
    """Polls /status and notes when the rollout's (state, step) changes."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.changes: list[tuple[float, tuple[str, int]]] = []
        self.task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            rollout = (await status_of(self.proxy))["rollout"]
            phase = (rollout["state"], rollout["step"])
            if not self.changes or self.changes[-1][1] != phase:
                self.changes.append((loop.time(), phase))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    def phases(self, results: list[Result], margin: float = 0.15) -> list[list[Result]]:
        """The requests started well inside each phase (away from the changes, which polling
        sees up to one interval late)."""
        out = []
        for i, (start, _) in enumerate(self.changes):
            end = self.changes[i + 1][0] if i + 1 < len(self.changes) else float("inf")
            out.append([r for r in results if start + margin <= r.started <= end - margin])
        return out


async def test_healthy_rollout_steps_up_and_awaits_promotion(switchback: StartProxy) -> None:
    proxy = await switchback(FAST)
    async with Load(proxy.url, clients=40) as load:
        await load.wait_for_requests(100)
        timeline = Timeline(proxy)
        code, body = await proxy.admin_call("POST", "/rollout")
        assert code == 200, body
        assert body["rollout"]["state"] == "ramping"
        await wait_for_state(proxy, "awaiting_promotion", 15)
        await asyncio.sleep(0.5)  # some requests while it awaits promotion
        await timeline.stop()

    assert [phase for _, phase in timeline.changes] == [
        ("ramping", 0),
        ("ramping", 1),
        ("ramping", 2),
        ("awaiting_promotion", 2),
    ]
    phases = timeline.phases(load.results)
    assert all(len(p) >= 20 for p in phases), [len(p) for p in phases]
    shares = [green_share(p) for p in phases]
    assert 0 < shares[0] < shares[1] < shares[2] == 1.0, shares
    assert shares[3] == 1.0
    # Clients only ever move from blue to green while the weight goes up.
    on_green = [{r.client for r in p if r.served_by == "green"} for p in phases]
    assert on_green[0] <= on_green[1] <= on_green[2]
    assert failed(load.results) == []
    status = await status_of(proxy)
    assert (status["stable"], status["weights"]) == ("blue", {"blue": 0.0, "green": 100.0})


async def test_promote_makes_green_stable_for_every_request(switchback: StartProxy) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 70, "green": 30}}})
    samples = await proxy.metrics()
    assert sample(samples, "switchback_stable_release", release="blue") == 1
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(100)
        assert 0 < green_share(load.results) < 1
        loop = asyncio.get_running_loop()
        code, body = await proxy.admin_call("POST", "/promote")
        promoted = loop.time()
        assert code == 200, body
        await load.wait_for_requests_since(promoted, 100)

    assert (body["stable"], body["candidate"]) == ("green", "blue")
    assert body["weights"] == {"green": 100.0, "blue": 0.0}
    assert body["rollout"]["state"] == "promoted"
    after = load.since(promoted)
    assert len(after) >= 100 and {r.served_by for r in after} == {"green"}
    assert failed(load.results) == []
    samples = await proxy.metrics()
    assert sample(samples, "switchback_stable_release", release="green") == 1
    assert sample(samples, "switchback_stable_release", release="blue") == 0
    assert sample(samples, "switchback_rollout_state", state="promoted") == 1


async def test_auto_promote_ends_with_green_stable(switchback: StartProxy) -> None:
    proxy = await switchback(FAST)
    async with Load(proxy.url, clients=20) as load:
        code, body = await proxy.admin_call("POST", "/rollout", {"steps": [50, 100],
                                                                 "auto_promote": True})  # fmt: skip
        assert code == 200, body
        status = await wait_for_state(proxy, "promoted", 10)
        loop = asyncio.get_running_loop()
        promoted = loop.time()
        await load.wait_for_requests_since(promoted, 100)
    assert (status["stable"], status["weights"]) == ("green", {"green": 100.0, "blue": 0.0})
    assert {r.served_by for r in load.since(promoted)} == {"green"}
    assert failed(load.results) == []


async def test_no_data_holds_the_step(switchback: StartProxy) -> None:
    proxy = await switchback(
        {"rollout": {"steps": [20, 50, 100], "step_seconds": 0.5, "min_requests": 10}}
    )
    code, _ = await proxy.admin_call("POST", "/rollout")
    assert code == 200
    # Once the first step's time is up, the step is held for want of requests.
    held = await poll(lambda: status_of(proxy), lambda s: s["rollout"]["reason"], 5, "a hold")
    assert held["rollout"]["reason"] == "hold: 0 of 10 requests"
    assert (held["rollout"]["state"], held["rollout"]["step"]) == ("ramping", 0)
    # A few requests, fewer than min_requests, are no data either.
    async with Load(proxy.url, clients=4, pause=0.05) as load:
        await load.wait_for_requests(8)
    assert 0 < sum(r.served_by == "green" for r in load.results) < 10
    await asyncio.sleep(4 * 0.5)
    status = await status_of(proxy)
    assert status["rollout"]["state"] == "ramping"
    assert status["rollout"]["step"] == 0
    assert status["weights"] == {"blue": 80.0, "green": 20.0}
    assert status["rollout"]["reason"].startswith("hold: ")
    samples = await proxy.metrics()
    assert sample(samples, "switchback_rollout_step") == 0
    assert sample(samples, "switchback_rollout_state", state="ramping") == 1


async def test_promotion_frees_the_old_slot_for_a_new_url(switchback: StartProxy) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 60, "green": 40}}})
    code, body = await proxy.admin_call("POST", "/promote")
    assert code == 200, body
    next_blue, runner = await start_release("blue-next")
    try:
        edit_config(proxy.config_path, {"releases": {"blue": {"url": next_blue.url}}})
        code, body = await proxy.admin_call("POST", "/reload")
        assert code == 200, body
        assert (await status_of(proxy))["releases"]["blue"]["url"] == next_blue.url

        # At 0% the new URL takes no traffic.
        async with Load(proxy.url, clients=20) as load:
            await load.wait_for_requests(100)
        assert {r.served_by for r in load.results} == {"green"}
        assert next_blue.seen == []

        # Weights send clients to blue: they reach the new URL.
        code, body = await proxy.admin_call("PUT", "/traffic", {"weights": {"blue": 40}})
        assert code == 200, body
        async with Load(proxy.url, clients=20) as load:
            await load.wait_for_requests(100)
        on_blue = [r for r in load.results if r.served_by == "blue"]
        assert on_blue and {r.release for r in on_blue} == {"blue-next"}
        assert failed(load.results) == []
    finally:
        await runner.cleanup()


async def test_illegal_moves_are_409_and_change_nothing(switchback: StartProxy) -> None:
    proxy = await switchback(FAST)

    async def refused(method: str, path: str, body: Any, message: str) -> None:
        before = await status_of(proxy)
        code, answer = await proxy.admin_call(method, path, body)
        assert (code, answer) == (409, {"error": message, "code": "illegal_move"})
        after = await status_of(proxy)
        assert (after["weights"], after["rollout"]) == (before["weights"], before["rollout"])

    await refused("POST", "/rollout/pause", None, "can't handle event 'pause' in state 'idle'")
    await refused("POST", "/rollout/resume", None, "can't handle event 'resume' in state 'idle'")
    await refused(
        "POST",
        "/promote",
        None,
        "green carries no traffic: nothing to promote (set weights or start a rollout first)",
    )
    code, _ = await proxy.admin_call("POST", "/rollout")
    assert code == 200
    await refused("POST", "/rollout", None, "can't handle event 'start' in state 'ramping'")
    await refused("POST", "/rollout/resume", None, "can't handle event 'resume' in state 'ramping'")
    await refused(
        "PUT",
        "/traffic",
        {"weights": {"green": 90}},
        "a rollout is ramping: pause it or roll back before setting weights",
    )
    code, body = await proxy.admin_call("POST", "/rollout/pause")
    assert (code, body["rollout"]["state"]) == (200, "paused")
    await refused("POST", "/rollout/pause", None, "can't handle event 'pause' in state 'paused'")
    code, body = await proxy.admin_call("POST", "/rollback")
    assert (code, body["rollout"]["state"]) == (200, "rolled_back")
    await refused("POST", "/rollout/resume", None,
                  "can't handle event 'resume' in state 'rolled_back'")  # fmt: skip


async def test_bad_input_is_400_and_changes_nothing(switchback: StartProxy) -> None:
    """A value that can never be right is bad input (400), whatever the rollout's state; only
    a move the state forbids is a conflict (409)."""
    proxy = await switchback(FAST)
    bad = [
        ("PUT", "/traffic", {"green": 140}, "weights.green: 140.0 is not a percentage (0-100)"),
        ("PUT", "/traffic", {"green": -5}, "weights.green: -5.0 is not a percentage (0-100)"),
        ("PUT", "/traffic", {"blue": 30, "green": 30}, "weights: blue 30%, green 30% do not sum"),
        ("PUT", "/traffic", {"red": 10}, "weights.red: unknown release (known: blue, green)"),
        ("PUT", "/traffic", {"green": math.nan}, "request body: invalid JSON"),
        ("POST", "/rollout", [50, 20, 100], "rollout.steps: [50.0, 20.0, 100.0] is not strictly"),
    ]

    async def all_refused() -> None:
        for method, path, value, message in bad:
            before = await status_of(proxy)
            key = "weights" if path == "/traffic" else "steps"
            code, answer = await proxy.admin_call(method, path, {key: value})
            assert (code, answer["code"]) == (400, "invalid_input"), (value, answer)
            assert answer["error"].startswith(message)
            after = await status_of(proxy)
            assert (after["weights"], after["rollout"]) == (before["weights"], before["rollout"])

    await all_refused()
    code, _ = await proxy.admin_call("POST", "/rollout")
    assert code == 200
    await all_refused()  # while ramping too: the value is what is wrong, not the moment


# -- the CLI against a running Switchback --


@pytest.fixture(autouse=True)
def _no_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBACK_ADMIN", raising=False)
    monkeypatch.delenv("SWITCHBACK_ADMIN_TOKEN", raising=False)


async def test_cli_drives_a_running_switchback(
    switchback: StartProxy, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = await switchback()
    admin = ["--admin", proxy.admin]
    write = [*admin, "--token", "test-token"]

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = await cli("status", *admin)
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()]
    assert rows[0] == ["RELEASE", "ROLE", "WEIGHT", "IN-FLIGHT", "REQ/S", "5XX", "RATE", "P99"]
    assert rows[1][:3] == ["blue", "stable", "100%"]
    assert rows[2][:3] == ["green", "candidate", "0%"]
    assert "rollout:       idle" in out
    assert f"traffic from:  config ({proxy.config_path})" in out

    code, out, err = await cli("weights", "green=25", *admin)
    assert code == 1
    assert err == "switchback: missing admin token (give --token or set SWITCHBACK_ADMIN_TOKEN)\n"

    code, out, err = await cli("weights", "green=25", *write)
    assert (code, err) == (0, "")
    assert out == "weights set\nweights:  blue 75% (stable), green 25%\nrollout:  idle\n"
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(100)
    assert 0 < green_share(load.results) < 0.6

    argv = ["rollout", "start", "--steps", "10,100", "--step-seconds", "1"]
    code, out, err = await cli(*argv, *write)
    assert (code, err) == (0, "")
    assert out == (
        "rollout started\nweights:  blue 90% (stable), green 10%\n"
        "rollout:  ramping, step 1 of 2 (green at 10%, 1 s per step)\n"
    )
    code, out, err = await cli("weights", "green=50", *write)
    assert code == 1
    assert err == (
        "switchback: a rollout is ramping: pause it or roll back before setting weights\n"
    )

    code, out, err = await cli("rollback", "--reason", "checkout errors", *write)
    assert (code, err) == (0, "")
    assert out.startswith(
        "rolled back\nweights:  blue 100% (stable), green 0%\n"
        "rollout:  rolled_back; reason: checkout errors\n"
        "journal:  green wrote 0 journaled requests since "  # the load sent GETs only
    )
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(50)
    assert {r.served_by for r in load.results} == {"blue"}

    code, out, err = await cli("promote", *write)
    assert (code, out) == (1, "")
    assert err == (
        "switchback: green carries no traffic: nothing to promote "
        "(set weights or start a rollout first)\n"
    )
    code, out, err = await cli(*argv, *write)
    assert code == 0
    code, out, err = await cli("promote", *write)
    assert (code, err) == (0, "")
    assert out == "promoted\nweights:  green 100% (stable), blue 0%\nrollout:  promoted\n"
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(50)
    assert {r.served_by for r in load.results} == {"green"}

    code, out, err = await cli("status", *admin)
    assert code == 0
    rows = [line.split() for line in out.splitlines()]
    assert rows[1][:3] == ["blue", "candidate", "0%"]
    assert rows[2][:3] == ["green", "stable", "100%"]
    assert "rollout:       promoted" in out
    assert "traffic from:  state (saved admin changes override" in out

    config = read_config(proxy.config_path)
    config["releases"]["green"]["url"] = "http://127.0.0.1:9"
    write_config(proxy.config_path, config)
    code, out, err = await cli("reload", *write)
    assert (code, out) == (1, "")
    assert err == (
        f"switchback: {proxy.config_path}: releases.green.url: http://127.0.0.1:9 refused: green "
        "carries 100% of traffic and 0 request(s) in flight; a release's URL may change only at "
        "0% with nothing in flight\n"
    )
    config["releases"]["green"]["url"] = (await status_of(proxy))["releases"]["green"]["url"]
    config["upstream"]["response_timeout"] = 3.0
    write_config(proxy.config_path, config)
    code, out, err = await cli("reload", *write)
    assert (code, err) == (0, "")
    assert out == "config reloaded\nweights:  green 100% (stable), blue 0%\nrollout:  promoted\n"


async def test_pause_holds_a_healthy_rollout_and_resume_goes_on(switchback: StartProxy) -> None:
    proxy = await switchback(FAST)
    async with Load(proxy.url, clients=20) as load:
        code, _ = await proxy.admin_call("POST", "/rollout")
        assert code == 200
        code, body = await proxy.admin_call("POST", "/rollout/pause")
        assert (code, body["rollout"]["state"], body["rollout"]["step"]) == (200, "paused", 0)
        count = len(load.results)
        await wait_until(lambda: len(load.results) > count + 300, 10, "traffic while paused")
        await asyncio.sleep(1.5)  # longer than a step: a ramping rollout would have moved on
        status = await status_of(proxy)
        assert (status["rollout"]["state"], status["rollout"]["step"]) == ("paused", 0)
        assert status["weights"]["green"] == 20.0
        code, body = await proxy.admin_call("POST", "/rollout/resume")
        assert (code, body["rollout"]["state"]) == (200, "ramping")
        await wait_for_state(proxy, "ramping", 5, step=1)
    assert failed(load.results) == []


async def test_a_second_release_can_be_promoted_by_weights_too(switchback: StartProxy) -> None:
    """Blue/green by hand, twice: green promoted, blue's slot gets the next release, which is
    given some traffic and promoted in turn. A finished rollout is no reason to refuse."""
    proxy = await switchback({"traffic": {"weights": {"blue": 70, "green": 30}}})
    code, body = await proxy.admin_call("POST", "/promote")
    assert (code, body["stable"]) == (200, "green")
    next_blue, runner = await start_release("blue-next")
    try:
        edit_config(proxy.config_path, {"releases": {"blue": {"url": next_blue.url}}})
        code, body = await proxy.admin_call("POST", "/reload")
        assert code == 200, body
        code, body = await proxy.admin_call("PUT", "/traffic", {"weights": {"blue": 30}})
        assert code == 200, body
        code, body = await proxy.admin_call("POST", "/promote")
        assert code == 200, body
        assert (body["stable"], body["weights"]) == ("blue", {"blue": 100.0, "green": 0.0})
        assert body["rollout"]["state"] == "promoted"
        async with Load(proxy.url, clients=20) as load:
            await load.wait_for_requests(60)
        assert {(r.status, r.served_by, r.release) for r in load.results} == {
            (200, "blue", "blue-next")
        }
    finally:
        await runner.cleanup()
