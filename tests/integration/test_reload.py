"""Hot reload: POST /reload, SIGHUP and the config file watcher. A valid change takes effect
without a restart; an invalid file, or a change that would pull a release's URL from under its
traffic, is refused with the reason, counted, and the old config stays in force while traffic
flows on without a failed request."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.integration.conftest import (
    Proxy,
    ProxyProcess,
    Releases,
    StartProxy,
    run_switchback,
    sample,
    write_switchback_config,
)
from tests.integration.helpers_rollout import (
    Load,
    Process,
    Processes,
    edit_config,
    failed,
    fetch,
    poll,
    processes_fixture,  # noqa: F401 - the processes fixture
    status_of,
    wait_for_state,
    wait_until,
)
from tests.integration.releases import start_release


async def reload_counts(proxy: Proxy | Process) -> tuple[float, float]:
    """(reloads that took effect, reloads refused), from /metrics."""
    samples = await proxy.metrics()
    return (
        sample(samples, "switchback_config_reloads_total"),
        sample(samples, "switchback_config_reload_failures_total"),
    )


# -- the refused URL change --


async def test_url_change_under_traffic_is_refused_and_the_old_url_serves_on(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback()
    other, runner = await start_release("blue-elsewhere")
    try:
        async with Load(proxy.url, clients=10) as load:
            await load.wait_for_requests(50)
            edit_config(proxy.config_path, {"releases": {"blue": {"url": other.url}}})
            code, body = await proxy.admin_call("POST", "/reload")
            await load.wait_for_requests(50)
        assert code == 400
        # The count in flight depends on the moment; the rest of the message does not.
        assert re.fullmatch(
            re.escape(f"{proxy.config_path}: releases.blue.url: {other.url} refused: blue carries")
            + r" 100% of traffic and \d+ request\(s\) in flight; a release's URL may change only"
            r" at 0% with nothing in flight",
            body["error"],
        ), body
        assert other.seen == []
        assert {(r.status, r.release) for r in load.results} == {(200, "blue")}
        assert (await status_of(proxy))["releases"]["blue"]["url"] == releases.blue.url
        assert await reload_counts(proxy) == (0, 1)
    finally:
        await runner.cleanup()


async def test_url_change_with_requests_in_flight_is_refused_until_they_finish(
    switchback: StartProxy, releases: Releases
) -> None:
    """Green carries 0% of the weighted traffic, but a request sent to it with the override
    header is in flight: its URL may not change until that request is answered."""
    proxy = await switchback({"traffic": {"override_header": "X-Release"}})
    other, runner = await start_release("green-next")
    try:
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(
                fetch(session, proxy.url, "/slow/0.5", "c", headers={"X-Release": "green"})
            )
            await poll(
                lambda: status_of(proxy),
                lambda s: s["releases"]["green"]["in_flight"] == 1,
                5,
                "the slow request in flight",
            )
            edit_config(proxy.config_path, {"releases": {"green": {"url": other.url}}})
            code, body = await proxy.admin_call("POST", "/reload")
            assert code == 400
            assert body["error"].startswith(
                f"{proxy.config_path}: releases.green.url: {other.url} refused: green carries "
                "0% of traffic and 1 request(s) in flight"
            )
            result = await slow
            assert (result.status, result.release) == (200, "green")  # not cut by the refusal

            code, body = await proxy.admin_call("POST", "/reload")
            assert code == 200, body
            after = await fetch(session, proxy.url, "/x", "c", headers={"X-Release": "green"})
        assert (after.status, after.served_by, after.release) == (200, "green", "green-next")
        assert await reload_counts(proxy) == (1, 1)
    finally:
        await runner.cleanup()


async def test_url_change_refused_while_in_flight_even_after_an_upstream_change(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback({"traffic": {"override_header": "X-Release"}})
    other, runner = await start_release("green-next")
    try:
        async with aiohttp.ClientSession() as session:
            slow = asyncio.create_task(
                fetch(session, proxy.url, "/slow/1", "c", headers={"X-Release": "green"})
            )
            await poll(
                lambda: status_of(proxy),
                lambda s: s["releases"]["green"]["in_flight"] == 1,
                5,
                "the slow request in flight",
            )
            edit_config(proxy.config_path, {"upstream": {"pool_size": 32}})
            code, body = await proxy.admin_call("POST", "/reload")
            assert code == 200, body
            edit_config(proxy.config_path, {"releases": {"green": {"url": other.url}}})
            code, body = await proxy.admin_call("POST", "/reload")
            await slow
        assert code == 400, body
    finally:
        await runner.cleanup()


# -- invalid files --


async def test_invalid_file_via_post_reload_is_400_with_the_key_path(
    switchback: StartProxy,
) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 80, "green": 20}}})
    good = proxy.config_path.read_text()
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(50)
        edit_config(proxy.config_path, {"traffic": {"weights": {"blue": 100, "green": 140}}})
        code, body = await proxy.admin_call("POST", "/reload")
        problem = "traffic.weights.green: 140 is not a percentage (0-100)"
        error = {"error": f"{proxy.config_path}: {problem}", "code": "invalid_config"}
        assert (code, body) == (400, error)
        proxy.config_path.write_text(good.replace("connect_timeout: 1.0", "connect_timeout: soon"))
        code, body = await proxy.admin_call("POST", "/reload")
        assert (code, body) == (
            400,
            {
                "error": f"{proxy.config_path}: upstream.connect_timeout: 'soon' is not a number",
                "code": "invalid_config",
            },
        )
        proxy.config_path.write_text("releases: [\n")
        code, body = await proxy.admin_call("POST", "/reload")
        assert code == 400 and "invalid YAML" in body["error"]
        await load.wait_for_requests(100)
    assert failed(load.results) == []
    assert (await status_of(proxy))["weights"] == {"blue": 80.0, "green": 20.0}
    assert 0 < sum(r.served_by == "green" for r in load.results) < len(load.results)
    assert await reload_counts(proxy) == (0, 3)


async def test_split_change_refused_during_a_rollout_applies_once_it_is_over(
    switchback: StartProxy,
) -> None:
    proxy = await switchback({"rollout": {"steps": [10, 100], "step_seconds": 30.0}})
    code, _ = await proxy.admin_call("POST", "/rollout")
    assert code == 200
    edit_config(proxy.config_path, {"traffic": {"weights": {"blue": 50, "green": 50}}})
    code, body = await proxy.admin_call("POST", "/reload")
    assert (code, body) == (
        400,
        {
            "error": f"{proxy.config_path}: traffic: the file changes the split while a rollout "
            "is ramping; roll back or promote first",
            "code": "invalid_config",
        },
    )
    assert (await status_of(proxy))["weights"] == {"blue": 90.0, "green": 10.0}

    code, _ = await proxy.admin_call("POST", "/rollback")
    assert code == 200
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body
    assert (body["weights"], body["source"]) == ({"blue": 50.0, "green": 50.0}, "config")
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(60)
    assert {r.served_by for r in load.results} == {"blue", "green"}


async def test_split_change_refused_while_a_rollout_awaits_promotion(
    switchback: StartProxy,
) -> None:
    """Green at 100% waiting for an operator is still a rollout in progress: the file may not
    take green out from under it (only a rollback, counted and with a reason, may)."""
    proxy = await switchback(
        {"rollout": {"steps": [100], "step_seconds": 1.0, "min_requests": 5, "max_p99_ms": 5000}}
    )
    async with Load(proxy.url, clients=10) as load:
        code, _ = await proxy.admin_call("POST", "/rollout")
        assert code == 200
        await wait_for_state(proxy, "awaiting_promotion", 10)
        edit_config(proxy.config_path, {"traffic": {"weights": {"blue": 50, "green": 50}}})
        code, body = await proxy.admin_call("POST", "/reload")
        await load.wait_for_requests(30)
    assert (code, body) == (
        400,
        {
            "error": f"{proxy.config_path}: traffic: the file changes the split while a rollout "
            "is awaiting_promotion; roll back or promote first",
            "code": "invalid_config",
        },
    )
    status = await status_of(proxy)
    assert (status["weights"], status["rollout"]["state"]) == (
        {"blue": 0.0, "green": 100.0},
        "awaiting_promotion",
    )
    code, body = await proxy.admin_call("POST", "/promote")
    assert (code, body["stable"]) == (200, "green")


async def test_pin_added_during_a_rollout_takes_effect_and_the_rollout_goes_on(
    switchback: StartProxy,
) -> None:
    """Pins follow the file at every reload; adding one changes no weight, so a rollout in
    progress is no reason to refuse it, nor does the reload touch the rollout's split."""
    proxy = await switchback({"rollout": {"steps": [10, 100], "step_seconds": 30.0}})
    code, _ = await proxy.admin_call("POST", "/rollout")
    assert code == 200
    edit_config(proxy.config_path, {"traffic": {"pins": {"green": ["tester"]}}})
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body
    assert body["weights"] == {"blue": 90.0, "green": 10.0}
    assert body["rollout"]["state"] == "ramping"
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            result = await fetch(session, proxy.url, "/x", "tester")
            assert (result.status, result.served_by) == (200, "green")


async def test_pin_added_after_a_rollback_does_not_undo_it(switchback: StartProxy) -> None:
    proxy = await switchback({"traffic": {"weights": {"blue": 70, "green": 30}}})
    code, _ = await proxy.admin_call("POST", "/rollback", {"reason": "bad build"})
    assert code == 200
    edit_config(proxy.config_path, {"traffic": {"pins": {"blue": ["tester"]}}})
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body
    assert body["weights"] == {"blue": 100.0, "green": 0.0}
    assert body["rollout"]["state"] == "rolled_back"
    async with Load(proxy.url, clients=20) as load:
        await load.wait_for_requests(60)
    assert {r.served_by for r in load.results} == {"blue"}


# -- SIGHUP and the watcher, in a real process --


def subprocess_config(releases: Releases, tmp_path: Path) -> Path:
    return write_switchback_config(tmp_path / "switchback.yaml", releases)


def rewrite_unseen(path: Path, old: str, new: str) -> None:
    """Rewrite the file in place, same size and mtime: only SIGHUP can notice the change."""
    text = path.read_text()
    assert len(old) == len(new) and text.count(old) == 1
    st = os.stat(path)
    path.write_text(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def test_sighup_reloads_and_a_bad_file_changes_nothing(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = subprocess_config(releases, tmp_path)
    proc = await processes.start(path)
    async with Load(proc.url, clients=20) as load:
        await load.wait_for_requests(50)
        rewrite_unseen(path, "blue: 100\n    green: 0", "blue: 70\n    green: 30")
        proc.send_signal(signal.SIGHUP)
        await poll(
            lambda: status_of(proc),
            lambda s: s["weights"] == {"blue": 70.0, "green": 30.0},
            5,
            "the new weights",
        )
        assert await reload_counts(proc) == (1, 0)

        good = path.read_text()
        path.write_text(good.replace("green: 30", "green: 40"))  # sums to 110
        proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: "config reload refused" in proc.log, 5, "the refusal")
        count = len(load.results)
        await wait_until(lambda: len(load.results) > count + 200, 10, "traffic after it")
    assert failed(load.results) == []
    assert (await status_of(proc))["weights"] == {"blue": 70.0, "green": 30.0}
    assert f"{path}: traffic.weights: {{blue: 70, green: 40}} sum to 110, not 100" in proc.log
    assert (await reload_counts(proc))[1] >= 1
    assert await proc.terminate() == 0


async def test_watcher_picks_up_a_changed_file_without_a_signal(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = subprocess_config(releases, tmp_path)
    proc = await processes.start(path)
    edit_config(path, {"traffic": {"weights": {"blue": 60, "green": 40}}})
    status = await poll(
        lambda: status_of(proc),
        lambda s: s["weights"] == {"blue": 60.0, "green": 40.0},
        5,
        "the watcher to apply the file",
    )
    assert status["source"] == "config"
    async with Load(proc.url, clients=20) as load:
        await load.wait_for_requests(60)
    assert {r.served_by for r in load.results} == {"blue", "green"}
    # A broken file is seen too, refused, and the split stays.
    path.write_text("releases: [\n")
    await poll(lambda: reload_counts(proc), lambda c: c[1] >= 1, 5, "the refusal")
    assert (await status_of(proc))["weights"] == {"blue": 60.0, "green": 40.0}


async def start_and_act_while_starting(
    path: Path, state_dir: Path, act: Callable[[ProxyProcess], None]
) -> Process:
    """Start Switchback and call ``act`` the moment it has read its config and is setting up
    (its state file appears), before it has started listening."""
    inner = ProxyProcess(await run_switchback("run", "--config", str(path)))
    process = Process(inner)
    try:
        await wait_until(
            lambda: (state_dir / "traffic.json").exists() or inner.proc.returncode is not None,
            20,
            "switchback to start setting up",
            interval=0.001,
        )
        act(inner)
        await inner.wait_listening()
    except BaseException:
        await inner.stop()
        raise
    return process


async def test_sighup_while_starting_reloads_once_running(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    """A SIGHUP that arrives before Switchback is ready neither kills it nor is lost: the file
    changed after Switchback read it is applied once it runs."""
    path = subprocess_config(releases, tmp_path)

    def change_and_hup(inner: ProxyProcess) -> None:
        rewrite_unseen(path, "blue: 100\n    green: 0", "blue: 70\n    green: 30")
        inner.proc.send_signal(signal.SIGHUP)

    proc = await start_and_act_while_starting(path, tmp_path / "state", change_and_hup)
    processes.started.append(proc)
    await poll(
        lambda: status_of(proc),
        lambda s: s["weights"] == {"blue": 70.0, "green": 30.0},
        5,
        "the file read again after the early SIGHUP",
    )
    assert await proc.terminate() == 0


async def test_file_changed_while_starting_is_picked_up_by_the_watcher(
    releases: Releases, tmp_path: Path, processes: Processes
) -> None:
    path = subprocess_config(releases, tmp_path)

    def change(inner: ProxyProcess) -> None:
        edit_config(path, {"traffic": {"weights": {"blue": 60, "green": 40}}})

    proc = await start_and_act_while_starting(path, tmp_path / "state", change)
    processes.started.append(proc)
    await poll(
        lambda: status_of(proc),
        lambda s: s["weights"] == {"blue": 60.0, "green": 40.0},
        5,
        "the watcher to apply the change made while starting",
    )
