"""The shipped Prometheus rules, checked by Prometheus's own promtool, against metric names
that a running Switchback really exposes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.integration.conftest import StartProxy
from tests.integration.every_feature import TOUCHED, every_feature_config, touch_every_feature

CONFIG = Path(__file__).resolve().parents[2] / "config"
PROMTOOL = shutil.which("promtool")

# Locally the promtool checks are skipped when promtool is missing; .ci/run installs it and
# sets SWITCHBACK_REQUIRE_PROMTOOL so that CI can never skip them.
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None and not os.environ.get("SWITCHBACK_REQUIRE_PROMTOOL"),
    reason="promtool missing (.ci/run installs Debian's prometheus package)",
)


@needs_promtool
def test_rules_are_valid_for_promtool() -> None:
    out = subprocess.run(
        [PROMTOOL or "promtool", "check", "rules", str(CONFIG / "prometheus-rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_rule_unit_tests_pass() -> None:
    out = subprocess.run(
        [PROMTOOL or "promtool", "test", "rules", str(CONFIG / "prometheus-rules.test.yaml")],
        capture_output=True,
        text=True,
        check=False,
        cwd=CONFIG,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _metric_names_in_rules() -> set[str]:
    rules = yaml.safe_load((CONFIG / "prometheus-rules.yaml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = (CONFIG / "grafana-dashboard.json").read_text()
    # Recording rules' own names (level:metric:operation) are not Switchback's metrics.
    found = set(
        re.findall(r"(?<![:\w])switchback_[a-z0-9_]+(?![:\w])", "\n".join(exprs) + dashboard)
    )
    return {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in found}


async def every_feature_exposition(switchback: StartProxy) -> str:
    """/metrics of a Switchback with every feature configured, after traffic touching each."""
    proxy = await switchback(every_feature_config())
    await touch_every_feature(proxy)
    async with aiohttp.ClientSession() as session, session.get(proxy.admin + "/metrics") as resp:
        text = await resp.text()
    for family in TOUCHED:
        assert re.search(rf"^{family}(_bucket)?{{", text, re.MULTILINE), family
    return text


@needs_promtool
async def test_metrics_pass_promtool_check_metrics(switchback: StartProxy) -> None:
    """Prometheus's linter on the real exposition: names, units, suffixes, HELP and TYPE of
    every family, those of shadow, journal, field selection and enforcement included."""
    text = await every_feature_exposition(switchback)
    out = subprocess.run(
        [PROMTOOL or "promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (out.returncode, out.stdout + out.stderr) == (0, "")


async def test_rules_and_dashboard_name_only_metrics_switchback_exposes(
    switchback: StartProxy,
) -> None:
    text = await every_feature_exposition(switchback)
    types = re.findall(r"^# TYPE (switchback_[a-z0-9_]+) ", text, re.MULTILINE)
    exposed = {re.sub(r"_total$", "", n) for n in types}
    wanted = _metric_names_in_rules()
    assert wanted, "the rules name no metric"
    assert wanted <= exposed, f"not exposed by Switchback: {sorted(wanted - exposed)}"
