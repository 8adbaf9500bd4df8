"""The shipped Grafana dashboard against a real Prometheus scraping a Switchback with every
feature configured: every panel's query parses and runs, names only metrics that Switchback
exports (its /metrics declares the name) or that the shipped recording rules define, returns
series when Prometheus holds series of every name it reads (unless it filters them with a
comparison), and carries the labels its legend names; the panels cover what an operator watches."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp

from tests.integration.conftest import StartProxy
from tests.integration.every_feature import TOUCHED, every_feature_config, touch_every_feature
from tests.integration.prometheus_server import (
    CONFIG,
    SCRAPE,
    StartPrometheus,
    needs_prometheus,
    prometheus,  # noqa: F401 - the prometheus fixture
    recording_rule_names,
    rules_for_test,
)

DASHBOARD = json.loads((CONFIG / "grafana-dashboard.json").read_text())

# Grafana's variables, as Grafana would set them for this Prometheus: $__rate_interval is
# max($__interval + scrape interval, 4 x scrape interval).
VARIABLES = {
    "$__rate_interval": f"{int(4 * SCRAPE * 1000)}ms",
    "${__rate_interval}": f"{int(4 * SCRAPE * 1000)}ms",
    "$__interval": f"{int(SCRAPE * 1000)}ms",
    "${__interval}": f"{int(SCRAPE * 1000)}ms",
    "$__range": "1h",
    "${__range}": "1h",
}

# What the dashboard must show, and a query name that shows it.
COVERAGE = {
    "configured split": "switchback_traffic_weight",
    "served split": "release:switchback_requests:ratio_rate5m",
    "request rate per release": "release:switchback_requests:rate5m",
    "5xx ratio per release": "release:switchback_errors_5xx:ratio_rate5m",
    "p99 per release": "release:switchback_request_duration_seconds:p99_5m",
    "rollout state": "switchback_rollout_state",
    "rollout step": "switchback_rollout_step",
    "rollbacks": "switchback_rollbacks_total",
    "deprecated use per element and client": "element_client:switchback_deprecated:increase1d",
    "last seen per element and client": "element_client:switchback_deprecated_last_seen:max",
    "last seen per element": "element:switchback_deprecated_last_seen:max",
    "refusals per element": "element:switchback_deprecated_refused:rate5m",
    "refusals per client": "switchback_deprecated_refused_total",
}

NAME = re.compile(r"(?<![\w:])[a-z_]*:?switchback_[a-z0-9_]+(?::[a-z0-9_]+)?")
FILTERED = re.compile(r"(>|<|==|!=)\s*[\d.]+\s*$")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def targets() -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of the dashboard, its annotations included."""
    out = [
        (panel["title"], target)
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
    ]
    out += [(f"annotation {a['name']}", a) for a in DASHBOARD["annotations"]["list"]]
    return out


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"a Grafana variable the test does not know: {expr}"
    return expr


def test_the_dashboard_is_grafana_json_with_unique_ids_on_the_prometheus_variable() -> None:
    assert DASHBOARD["schemaVersion"] == 39
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in DASHBOARD["panels"]:
        assert {"type", "title", "gridPos"} <= set(panel), panel
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
            assert panel["targets"], panel["title"]
    refs = [[t["refId"] for t in p.get("targets", [])] for p in DASHBOARD["panels"]]
    assert all(len(r) == len(set(r)) for r in refs)


def test_the_panels_cover_what_an_operator_watches() -> None:
    named = {name for _, target in targets() for name in NAME.findall(target["expr"])}
    missing = {what: name for what, name in COVERAGE.items() if name not in named}
    assert missing == {}


@needs_prometheus
async def test_every_panel_query_runs_on_what_switchback_exports(
    switchback: StartProxy,
    prometheus: StartPrometheus,  # noqa: F811 - the fixture
) -> None:
    proxy = await switchback(every_feature_config())
    prom = await prometheus([f"127.0.0.1:{proxy.runtime.admin_port}"], rules_for_test())
    await touch_every_feature(proxy)
    # Until Prometheus held each family the traffic creates a second ago too (rates need two
    # samples),
    # and the recording rules have run on them.
    families = "|".join(TOUCHED).replace("duration_seconds", "duration_seconds_bucket")
    await prom.wait_for(
        lambda: prom.query(
            f"count(count by (__name__) ({{__name__=~'{families}'}} offset 1s)) == {len(TOUCHED)}"
            " and on () count(element:switchback_deprecated_refused:rate5m) > 0"
        ),
        bool,
        "every touched family scraped twice, and the rules evaluated",
    )
    # Every name the real exposition declares (a family may have no series yet: noise that
    # did not happen), and the names Prometheus holds series of.
    async with aiohttp.ClientSession() as s, s.get(proxy.admin + "/metrics") as r:
        exposition = await r.text()
    exported = set()
    for name, kind in re.findall(r"^# TYPE (switchback_\w+) (\w+)$", exposition, re.M):
        suffixes = ("_bucket", "_count", "_sum") if kind == "histogram" else ("",)
        exported |= {name + suffix for suffix in suffixes}
    present = {
        s["metric"]["__name__"]
        for s in await prom.query("count by (__name__) ({__name__=~'.*switchback_.+'})")
    }
    assert present - recording_rule_names() <= exported
    known = exported | recording_rule_names()

    for title, target in targets():
        expr = substitute(target["expr"])
        answer = await prom.api("query", query=expr)
        assert answer["status"] == "success", (title, expr, answer)
        names = set(NAME.findall(expr))
        assert names - known == set(), (title, expr)
        result = answer["data"]["result"]
        if names <= present and not FILTERED.search(expr):
            assert result, f"{title}: {expr} returned nothing"
        for label in LEGEND_LABEL.findall(target.get("legendFormat", "")):
            assert all(label in s["metric"] for s in result), (title, label, result)
