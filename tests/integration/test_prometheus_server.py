"""The shipped recording and alert rules, in a real Prometheus scraping two Switchback replicas
in front of the same blue and green releases: the fleet-wide numbers are what the test sent,
summed (or, for last-seen times, maxed) over the replicas, and alerts fire when the candidate
fails (the error-rate alert; the automatic-rollback alert when a rollout rolls it back).

Prometheus runs a copy of ``config/prometheus-rules.yaml`` in which the groups are evaluated
every 0.5 s (shipped: 30 s) and each alert's ``for:`` is 2 s (shipped: up to 10 min); the
expressions, labels and annotations are the shipped ones (``prometheus_server.rules_for_test``).

How exact the expected values are. ``rate()`` and ``increase()`` extrapolate the increase
between the first and the last sample in their window: back towards where the counter would
have been zero (never further than that, so by at most the first sample's value), and forward
to the window's end (by at most 1.1 times the mean scrape interval, a share of at most
1.1 / (k - 1) of the increase when the series has k samples). The test first gives every
series a small known value (the seed) and lets Prometheus scrape it, then sends a known number
of requests, and reads the rules once every series has at least K samples: a summed counter
that ended at N after seeds adding up to S must then read between N - S and N * (1 + 1.1/(K-1))
(K = 11: +11%). The traffic is split unevenly between the replicas, so that one replica's
count, or the maximum or the mean over replicas, falls outside those bounds. A p99 whose
requests all fall in one histogram bucket is exact: every bucket series then has the same
samples, so extrapolation scales them alike and histogram_quantile's interpolation in that
bucket is (le_low + 0.99 * (le_high - le_low)).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.web_request import BaseRequest

from tests.integration.conftest import Proxy, Releases, StartProxy, sample
from tests.integration.helpers_rollout import (
    Load,
    SwitchableRelease,
    green_switch_fixture,  # noqa: F401 - the green_switch fixture
)
from tests.integration.prometheus_server import (
    Prometheus,
    StartPrometheus,
    needs_prometheus,
    prometheus,  # noqa: F401 - the prometheus fixture
    recording_rule_names,
    rules_for_test,
    shipped_rules,
)

K = 11  # samples every series has in Prometheus before the rules are read
EPS = 1.1 / (K - 1)
GREEN_DELAY = 1.2  # every green answer falls in the (1.0, 2.5] bucket
WINDOW = 300.0  # the rules' rate window, 5m


class SlowRelease:
    """Green: every answer after ``GREEN_DELAY``; ``/fail`` answers 500, anything else 200."""

    def __init__(self) -> None:
        self.runner: web.ServerRunner | None = None
        self.url = ""

    async def start(self) -> None:
        self.runner = web.ServerRunner(web.Server(self.handle), access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def handle(self, request: BaseRequest) -> web.StreamResponse:
        await asyncio.sleep(GREEN_DELAY)
        status = 500 if request.path == "/fail" else 200
        return web.json_response({"release": "green"}, status=status)


@pytest.fixture
async def slow_green() -> AsyncIterator[SlowRelease]:
    release = SlowRelease()
    await release.start()
    yield release
    assert release.runner is not None
    await release.runner.cleanup()


def replica_config(tmp_path: Path, name: str, green_url: str) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / f"state-{name}"),
        "releases": {"green": {"url": green_url}},
        "traffic": {"weights": {"blue": 50, "green": 50}, "override_header": "X-Release"},
        "deprecations": [{"id": "user-role", "field": "user.role", "deprecated": "2026-01-01"}],
    }


async def two_replicas(
    switchback: StartProxy, tmp_path: Path, green_url: str
) -> tuple[Proxy, Proxy]:
    a = await switchback(replica_config(tmp_path, "a", green_url), name="replica-a.yaml")
    b = await switchback(replica_config(tmp_path, "b", green_url), name="replica-b.yaml")
    return a, b


def target(proxy: Proxy) -> str:
    return f"127.0.0.1:{proxy.runtime.admin_port}"


Plan = list[tuple[str, str, str]]  # (release, path, client id)


async def send(proxy: Proxy, plan: Plan) -> Counter[tuple[str, int]]:
    """Every request of ``plan`` through ``proxy``, 50 at a time: (release, status) counts, the
    release as its own answer names it (blue's X-Release header, green's body)."""
    connector = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(release: str, path: str, client: str) -> tuple[str, int]:
            headers = {"X-Release": release, "X-Client-Id": client}
            async with session.get(proxy.url + path, headers=headers) as r:
                body = await r.json()
                served = r.headers.get("X-Release") or body.get("release")
                return str(served), r.status

        return Counter(await asyncio.gather(*(one(*step) for step in plan)))


def plan(blue: dict[str, int], green_ok: int, green_fail: int) -> Plan:
    """Blue: /users/1 (user.role is deprecated: one exposure each) for each client so many
    times; green: /ok and /fail, by client app-c."""
    out: Plan = [("blue", "/users/1", client) for client, n in blue.items() for _ in range(n)]
    out += [("green", "/ok", "app-c")] * green_ok + [("green", "/fail", "app-c")] * green_fail
    return out


SEED = plan({"app-a": 1, "app-b": 1}, 1, 1)  # on each replica, before the measured traffic
ON_A = plan({"app-a": 150, "app-b": 50}, 30, 10)
ON_B = plan({"app-a": 25, "app-b": 75}, 15, 5)


def within(value: float, total: float, seeds: float) -> bool:
    """Whether a rate(), times its window, or an increase() fits a counter summed over the
    replicas that ended at ``total`` after ``seeds`` (module docstring)."""
    return total - seeds <= value <= total * (1 + EPS)


async def wait_for_rules_after(prom: Prometheus, total: dict[str, float]) -> None:
    """Until Prometheus holds the final counts of both replicas, every series has K samples,
    and the recording rules have been evaluated since."""
    counted = " and ".join(
        [
            f"sum(switchback_requests_total) == {total['requests']}",
            f"sum(switchback_deprecated_total) == {total['deprecated']}",
            "min(count_over_time({__name__=~'switchback_requests_total|switchback_deprecated_"
            f"total|switchback_request_duration_seconds_bucket'}}[5m])) >= {K}",
        ]
    )
    answer = await prom.wait_for(
        lambda: prom.query(f"({counted}) * 0"), bool, "final counts and K samples", 60
    )
    since = float(answer[0]["value"][0])
    await prom.wait_for(
        lambda: prom.scalar("min(timestamp(release:switchback_requests:rate5m))"),
        lambda t: t is not None and t > since,
        "the recording rules evaluated after that",
    )


@needs_prometheus
async def test_fleet_wide_recording_rules_sum_two_replicas(
    switchback: StartProxy,
    releases: Releases,
    slow_green: SlowRelease,
    prometheus: StartPrometheus,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    a, b = await two_replicas(switchback, tmp_path, slow_green.url)
    prom = await prometheus([target(a), target(b)], rules_for_test())

    # Every series exists, at a small known value, before the measured traffic.
    for proxy in (a, b):
        await send(proxy, SEED)
    await prom.wait_for(
        lambda: prom.query(
            f"sum(switchback_requests_total) == {2 * len(SEED)}"
            " and count(switchback_deprecated_total) == 4"
        ),
        bool,
        "the seeds scraped from both replicas",
    )
    # A first, then B: B saw each client last.
    served = await send(a, ON_A) + await send(b, ON_B)
    assert served == {("blue", 200): 300, ("green", 200): 45, ("green", 500): 15}, served

    everything = SEED + SEED + ON_A + ON_B
    by_release = Counter(release for release, _, _ in everything)
    seeds = Counter(release for release, _, _ in SEED + SEED)
    exposures = Counter(client for release, _, client in everything if release == "blue")
    await wait_for_rules_after(
        prom, {"requests": len(everything), "deprecated": sum(exposures.values())}
    )

    # Request rate per release, summed over the replicas.
    rates = await prom.values("release:switchback_requests:rate5m", "release")
    assert set(rates) == {"blue", "green"}
    for release, n in by_release.items():
        assert within(rates[release] * WINDOW, n, seeds[release]), (release, rates, n)

    # The served split: each release's share of all requests.
    shares = await prom.values("release:switchback_requests:ratio_rate5m", "release")
    total, seeded = len(everything), len(SEED) * 2
    for release, n in by_release.items():
        low = (n - seeds[release]) / (total * (1 + EPS))
        high = n * (1 + EPS) / (total - seeded)
        assert low <= shares[release] <= high, (release, shares)
    assert abs(sum(shares.values()) - 1) < 1e-9

    # 5xx ratio: green's /fail over all of green's; blue answered no 5xx: 0, not absent.
    ratios = await prom.values("release:switchback_errors_5xx:ratio_rate5m", "release")
    fails = sum(1 for release, path, _ in everything if path == "/fail")
    green = by_release["green"]
    low = (fails - 2) / (green * (1 + EPS))
    high = fails * (1 + EPS) / (green - seeds["green"])
    assert ratios["blue"] == 0 and low <= ratios["green"] <= high, (ratios, low, high)

    # p99: every green answer took between 1.0 and 2.5 s; blue answered at once.
    p99 = await prom.values("release:switchback_request_duration_seconds:p99_5m", "release")
    assert abs(p99["green"] - (1.0 + 0.99 * 1.5)) < 1e-9, p99
    assert p99["blue"] < 1.0, p99

    # Deprecated use per element and client, summed over the replicas.
    uses = await prom.query("element_client:switchback_deprecated:increase1d")
    assert {(s["metric"]["element"], s["metric"]["kind"]) for s in uses} == {
        ("user-role", "exposure")
    }
    per_client = {s["metric"]["client"]: float(s["value"][1]) for s in uses}
    assert set(per_client) == set(exposures)
    for client, n in exposures.items():
        assert within(per_client[client], n, 2), (client, per_client, n)

    # Last seen: the latest of the two replicas' times, per client and per element.
    seen_a, seen_b = await last_seen(a), await last_seen(b)
    assert all(seen_b[c] > seen_a[c] for c in exposures), (seen_a, seen_b)
    rule = "element_client:switchback_deprecated_last_seen:max"
    assert await prom.values(rule, "client") == seen_b
    element_seen = await prom.values("element:switchback_deprecated_last_seen:max", "element")
    assert element_seen == {"user-role": max(seen_b.values())}

    await every_rule_evaluates(prom)


async def last_seen(proxy: Proxy) -> dict[str, float]:
    samples = await proxy.metrics()
    name = "switchback_deprecated_last_seen_timestamp_seconds"
    return {
        client: sample(samples, name, element="user-role", client=client)
        for client in ("app-a", "app-b")
    }


async def every_rule_evaluates(prom: Prometheus) -> None:
    """Every shipped rule is loaded and evaluated without an error against real series."""
    answer = await prom.api("rules")
    loaded = {r["name"]: r for g in answer["data"]["groups"] for r in g["rules"]}
    shipped = {r.get("record") or r["alert"] for g in shipped_rules()["groups"] for r in g["rules"]}
    assert set(loaded) == shipped
    assert {name: r["health"] for name, r in loaded.items() if r["health"] != "ok"} == {}


@needs_prometheus
async def test_the_error_rate_alert_fires_when_the_candidate_fails(
    switchback: StartProxy,
    releases: Releases,
    green_switch: SwitchableRelease,
    prometheus: StartPrometheus,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """Green, the candidate, answers 500 to everything under a steady load through both
    replicas: SwitchbackReleaseErrorRateHigh goes pending, then firing (its ``for:`` shortened
    to 2 s in the copy Prometheus runs), for green alone, as shipped (labels, annotations)."""
    a, b = await two_replicas(switchback, tmp_path, green_switch.url)
    prom = await prometheus([target(a), target(b)], rules_for_test(for_seconds=2.0))
    green_switch.status = 500

    async def alerts() -> list[dict[str, Any]]:
        answer = await prom.api("alerts")
        return [
            alert
            for alert in answer["data"]["alerts"]
            if alert["labels"]["alertname"] == "SwitchbackReleaseErrorRateHigh"
        ]

    assert await alerts() == []
    async with Load(a.url, clients=10, prefix="a"), Load(b.url, clients=10, prefix="b"):
        pending = await prom.wait_for(alerts, bool, "the alert pending or firing", 60)
        firing = await prom.wait_for(
            alerts, lambda found: found and found[0]["state"] == "firing", "the alert firing", 30
        )
    assert [alert["labels"] for alert in firing] == [
        {"alertname": "SwitchbackReleaseErrorRateHigh", "release": "green", "severity": "page"}
    ]
    assert firing[0]["annotations"]["summary"] == "green answers more than 1% 5xx"
    assert firing[0]["annotations"]["description"].startswith("5xx ratio 100% over 5 minutes")
    assert pending[0]["activeAt"] == firing[0]["activeAt"]  # one alert, pending then firing
    # The rules' own view agrees: the alert rule is firing.
    answer = await prom.api("rules", type="alert")
    states = {r["name"]: r["state"] for g in answer["data"]["groups"] for r in g["rules"]}
    assert states["SwitchbackReleaseErrorRateHigh"] == "firing"


def test_recording_rules_follow_the_naming_convention() -> None:
    """level:metric:operations, the metric being one Switchback exports (without _total)."""
    for name in recording_rule_names():
        level, metric, operations = name.split(":")
        assert level and operations and metric.startswith("switchback_"), name
        assert not metric.endswith("_total"), name


@needs_prometheus
async def test_an_automatic_rollback_fires_its_alert_for_the_replica_that_rolled_back(
    switchback: StartProxy,
    releases: Releases,
    green_switch: SwitchableRelease,
    prometheus: StartPrometheus,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """Replica A rolls green out step by step; green fails at the first step and A rolls it
    back by itself: SwitchbackRolledBack (no ``for:``) fires with the reason, for A alone;
    B, which runs no rollout, has none."""
    rollout = {
        "traffic": {"weights": {"blue": 100, "green": 0}},
        "rollout": {"steps": [20, 50, 100], "step_seconds": 1.0, "min_requests": 10},
    }
    a = await switchback(
        {**replica_config(tmp_path, "a", green_switch.url), **rollout}, name="replica-a.yaml"
    )
    b = await switchback(replica_config(tmp_path, "b", green_switch.url), name="replica-b.yaml")
    prom = await prometheus([target(a), target(b)], rules_for_test())

    async def rolled_back() -> list[dict[str, Any]]:
        answer = await prom.api("alerts")
        return [
            alert
            for alert in answer["data"]["alerts"]
            if alert["labels"]["alertname"] == "SwitchbackRolledBack"
        ]

    # Both replicas scraped, rollbacks at 0, before anything happens.
    await prom.wait_for(
        lambda: prom.query(
            "count(switchback_rollbacks_total) == 6 and sum(switchback_rollbacks_total) == 0"
        ),
        bool,
        "both replicas' rollback counters scraped at 0",
    )
    green_switch.status = 500
    async with Load(a.url, clients=20, prefix="a"):
        code, body = await a.admin_call("POST", "/rollout")
        assert code == 200, body
        firing = await prom.wait_for(
            rolled_back,
            lambda found: found and found[0]["state"] == "firing",
            "SwitchbackRolledBack",
            60,
        )
    assert len(firing) == 1, firing
    labels = firing[0]["labels"]
    assert (labels["reason"], labels["severity"], labels["instance"]) == (
        "error_rate",
        "ticket",
        target(a),
    )
    assert firing[0]["annotations"]["summary"] == "Automatic rollback (error_rate)"
