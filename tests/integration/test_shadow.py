"""Shadow traffic in front of two real releases that differ (``shadow_releases``): copies reach
the candidate as sent, the differences are found, told from noise and from expected removals,
counted on the real /metrics, and a client never waits for a copy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from proxy.cli.commands import main
from proxy.config.load import load_config
from proxy.errors import ConfigError
from tests.integration.conftest import TOKEN, Proxy, Releases, StartProxy, sample
from tests.integration.helpers_rollout import edit_config, poll, wait_until
from tests.integration.shadow_releases import DiffRelease

Pair = tuple[DiffRelease, DiffRelease]


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    blue, green = DiffRelease("blue"), DiffRelease("green")
    await blue.start()
    await green.start()
    yield blue, green
    await blue.close()
    await green.close()


def shadow_config(pair: Pair, **shadow: Any) -> dict[str, Any]:
    blue, green = pair
    return {
        "releases": {"blue": {"url": blue.url}, "green": {"url": green.url}},
        "shadow": {"to": "green", "percent": 100, "noise_percent": 0, **shadow},
        "telemetry": {"flush_seconds": 0.1},
    }


async def get(
    proxy: Proxy, path: str, client: str = "app1", **headers: str
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.get(URL(proxy.url + path, encoded=True), headers={"X-Client-Id": client, **headers}) as r,
    ):
        return r.status, dict(r.headers), await r.json()


async def compared(proxy: Proxy, n: int) -> None:
    async def count() -> float:
        return sample(await proxy.metrics(), "switchback_shadow_compared_total")

    await poll(count, lambda v: v >= n, 10.0, f"{n} shadow comparisons")


async def report(proxy: Proxy) -> dict[str, Any]:
    code, body = await proxy.admin_call("GET", "/shadow?limit=100")
    assert code == 200, body
    return dict(body)


def found(rep: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    return {(d["route"], d["path"], d["kind"]): d["verdict"] for d in rep["differences"]}


async def test_each_kind_of_difference_is_found_and_counted(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    blue, green = pair
    proxy = await switchback(shadow_config(pair))
    secret = {"Authorization": "Bearer s3cret", "Cookie": "sid=42"}
    status, head, body = await get(proxy, "/users/7?x=%41", **secret)
    assert (status, head["X-Served-By"], body["user"]["legacy"]) == (200, "blue", "x")
    for path in ("/items", "/gone", "/same"):
        status, _, _ = await get(proxy, path)
        assert status == 200  # the client always has the stable release's answer
    await compared(proxy, 4)
    rep = await report(proxy)
    assert found(rep) == {
        ("/users/{id}", "user.legacy", "field_removed"): "breaking",
        ("/users/{id}", "user.role", "type_changed"): "breaking",
        ("/users/{id}", "user.roles", "field_added"): "compatible",
        ("/items", "items", "array_to_object"): "breaking",
        ("/gone", "(body)", "status_changed"): "breaking",
    }
    samples = await proxy.metrics()
    kinds = ("field_removed", "type_changed", "field_added")
    for kind in kinds:
        assert sample(samples, "switchback_shadow_diffs_total", route="/users/{id}", kind=kind) == 1
    assert sample(samples, "switchback_shadow_diffs_total", route="/gone", kind="status_changed")
    # The copy reached the candidate as the stable release got it: target, Host, headers.
    assert green.seen[0]["target"] == blue.seen[0]["target"] == "/users/7?x=%41"
    assert green.seen[0]["headers"] == blue.seen[0]["headers"]
    assert ("Authorization", "Bearer s3cret") in green.seen[0]["headers"]
    # ... and the report's example does not show the credentials.
    example = next(d for d in rep["differences"] if d["path"] == "user.legacy")["example"]
    assert example["target"] == "/users/7?x=%41"
    shown = {name: value for name, value in example["headers"]}
    assert shown["Authorization"] == shown["Cookie"] == "[redacted]"
    assert shown["X-Client-Id"] == "app1"


async def test_differences_the_stable_release_shows_against_itself_are_noise(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    proxy = await switchback(shadow_config(pair, noise_percent=100, compare_values=True))
    for _ in range(5):
        await get(proxy, "/random")
    await get(proxy, "/gone")
    await compared(proxy, 6)
    rep = await report(proxy)
    assert found(rep) == {
        ("/random", "nonce", "value_changed"): "noise",
        ("/gone", "(body)", "status_changed"): "breaking",
    }
    assert rep["breaking"] == 1
    samples = await proxy.metrics()
    assert sample(samples, "switchback_shadow_requests_total", role="noise") == 6
    route = {"route": "/random", "kind": "value_changed"}
    assert sample(samples, "switchback_shadow_noise_total", **route) == 5
    assert sample(samples, "switchback_shadow_diffs_total", **route) == 0


async def test_a_removed_deprecated_field_is_expected_until_a_client_uses_it(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    proxy = await switchback(shadow_config(pair))
    await get(proxy, "/users/1", client="app1")
    await compared(proxy, 1)
    assert found(await report(proxy))[("/users/{id}", "user.legacy", "field_removed")] == "breaking"
    # The field is declared deprecated after the fact: nobody has touched it since.
    dep = {"id": "user-legacy", "field": "user.legacy", "deprecated": "2026-01-01T00:00:00Z"}
    edit_config(proxy.config_path, {"deprecations": [dep]})
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body
    row = _row(await report(proxy), "user.legacy")
    assert (row["verdict"], row["deprecation"]) == ("expected", "user-legacy")
    # A client reads it from the stable release: removing it now breaks that client.
    await get(proxy, "/users/2", client="mobile-7")
    await compared(proxy, 2)
    row = _row(await report(proxy), "user.legacy")
    assert (row["verdict"], row["clients"]) == ("breaking", ["mobile-7"])
    assert row["detail"] == "breaking for 1 client: mobile-7"


def _row(rep: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(next(d for d in rep["differences"] if d["path"] == path))


async def test_a_slow_candidate_never_delays_the_client(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    _, green = pair
    proxy = await switchback(shadow_config(pair, timeout=30))
    async with aiohttp.ClientSession() as s:
        for _ in range(3):
            async with s.get(proxy.url + "/slow") as r:
                assert (r.status, await r.json()) == (200, {"slow": True})
    # Every answer came back whole while the candidate holds all three copies.
    await wait_until(lambda: green.waiting == 3, 10.0, "three copies held by the candidate")
    samples = await proxy.metrics()
    assert sample(samples, "switchback_shadow_in_flight") == 3
    assert sample(samples, "switchback_shadow_compared_total") == 0
    green.gate.set()
    await compared(proxy, 3)


async def test_copies_beyond_the_limits_are_dropped_and_counted(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    _, green = pair
    proxy = await switchback(shadow_config(pair, max_in_flight=1, timeout=3))
    await get(proxy, "/slow")
    await wait_until(lambda: green.waiting == 1, 10.0, "the first copy held")
    await get(proxy, "/slow")  # its copy finds the one place taken

    async def metrics() -> Any:
        return await proxy.metrics()

    def dropped(samples: Any, reason: str) -> float:
        return sample(samples, "switchback_shadow_dropped_total", reason=reason)

    samples = await poll(metrics, lambda s: dropped(s, "max_in_flight") == 1, 5.0, "a drop")
    assert dropped(samples, "timeout") == 0
    samples = await poll(metrics, lambda s: dropped(s, "timeout") == 1, 10.0, "the timeout")
    assert sample(samples, "switchback_shadow_in_flight") == 0
    assert sample(samples, "switchback_shadow_compared_total") == 0
    assert len(green.seen) == 1


async def test_methods_that_are_not_safe_are_copied_only_when_named(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    _, green = pair
    proxy = await switchback(shadow_config(pair))
    async with aiohttp.ClientSession() as s:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            async with s.request(method, proxy.url + "/echo", data=b"x") as r:
                assert r.status == 200
    await get(proxy, "/same")
    await compared(proxy, 1)
    assert [(s["method"], s["target"]) for s in green.seen] == [("GET", "/same")]

    edit_config(proxy.config_path, {"shadow": {"methods": ["GET", "POST"]}})
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body
    async with aiohttp.ClientSession() as s:
        async with s.post(proxy.url + "/echo", data=b'{"a": 1}') as r:
            assert r.status == 200
    await compared(proxy, 2)
    assert green.seen[-1]["method"] == "POST"
    assert green.seen[-1]["body"] == b'{"a": 1}'


async def test_reload_turns_shadow_traffic_off_and_keeps_the_report(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    _, green = pair
    proxy = await switchback(shadow_config(pair))
    await get(proxy, "/gone")
    await compared(proxy, 1)
    config = yaml.safe_load(proxy.config_path.read_text())
    del config["shadow"]
    proxy.config_path.write_text(yaml.safe_dump(config))
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body
    for _ in range(3):
        await get(proxy, "/gone")
    assert len(green.seen) == 1
    rep = await report(proxy)
    assert rep["enabled"] is False
    assert found(rep) == {("/gone", "(body)", "status_changed"): "breaking"}


async def test_rollout_start_refused_while_breaking_differences_are_recent(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    extra = shadow_config(pair)
    extra["rollout"] = {"require_clean_shadow": True}
    proxy = await switchback(extra)
    await get(proxy, "/same")
    await get(proxy, "/users/3")  # field_added only would be clean; this one is not
    await compared(proxy, 2)
    code, body = await proxy.admin_call("POST", "/rollout", {})
    assert code == 409
    assert body["code"] == "shadow_not_clean"
    assert "field_removed at /users/{id} user.legacy" in body["error"]
    assert "type_changed at /users/{id} user.role" in body["error"]
    code, status = await proxy.admin_call("GET", "/status")
    assert status["rollout"]["state"] != "ramping"


async def test_rollout_starts_when_the_shadow_is_clean(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    extra = shadow_config(pair)
    extra["rollout"] = {"require_clean_shadow": True}
    proxy = await switchback(extra)
    await get(proxy, "/same")
    await compared(proxy, 1)
    code, body = await proxy.admin_call("POST", "/rollout", {})
    assert code == 200, body


async def test_diff_report_on_the_command_line(
    switchback: StartProxy,
    pair: Pair,
    releases: Releases,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = await switchback(shadow_config(pair))
    await get(proxy, "/gone", Authorization="Bearer s3cret")
    await compared(proxy, 1)
    args = ["diff-report", "--admin", proxy.admin, "--token", TOKEN, "--fail-if-breaking"]
    code = await asyncio.to_thread(main, args)
    out = capsys.readouterr().out
    assert code == 3
    assert "breaking  status_changed  /gone  (body)" in out
    assert "e.g. GET /gone (client app1)" in out
    assert "s3cret" not in out


@pytest.mark.parametrize(
    ("shadow", "message"),
    [
        ({"to": "purple"}, "shadow.to: 'purple' is not a release (releases: blue, green)"),
        ({"to": "green", "percent": 140}, "shadow.percent: 140 is not a percentage (0-100)"),
        ({"to": "green", "methods": ["get"]}, "shadow.methods[0]: 'get' is not an HTTP method"),
        ({"to": "green", "timeout": 0}, "shadow.timeout: 0 is not a positive timeout"),
        ({"to": "green", "max_in_flight": 0}, "shadow.max_in_flight: 0 is less than 1"),
        ({"to": "green", "ignore": ["a..b"]}, "shadow.ignore[0]: 'a..b' is not a JSON path"),
        ({"to": "green", "noise_percent": -1}, "shadow.noise_percent: -1 is not a percentage"),
    ],
)
def test_config_errors_name_the_key_and_the_value(
    tmp_path: Path, shadow: dict[str, Any], message: str
) -> None:
    path = tmp_path / "switchback.yaml"
    config = {
        "releases": {"blue": {"url": "http://127.0.0.1:1"}, "green": {"url": "http://127.0.0.1:2"}},
        "shadow": shadow,
    }
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert f"{path}: {message}" in str(err.value)


def test_a_clean_shadow_cannot_be_required_without_one(tmp_path: Path) -> None:
    path = tmp_path / "switchback.yaml"
    config = {
        "releases": {"blue": {"url": "http://127.0.0.1:1"}, "green": {"url": "http://127.0.0.1:2"}},
        "rollout": {"require_clean_shadow": True},
    }
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match="rollout.require_clean_shadow: true needs a shadow"):
        load_config(path)


async def test_ignored_paths_are_not_compared(
    switchback: StartProxy, pair: Pair, releases: Releases
) -> None:
    proxy = await switchback(shadow_config(pair, ignore=["user.legacy", "user.role"]))
    await get(proxy, "/users/5")
    async with aiohttp.ClientSession() as s, s.head(proxy.url + "/gone") as r:
        assert r.status == 200
    await compared(proxy, 2)
    assert found(await report(proxy)) == {
        ("/users/{id}", "user.roles", "field_added"): "compatible",
        ("/gone", "(body)", "status_changed"): "breaking",  # HEAD: the status alone
    }
