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


async def test_rules_and_dashboard_name_only_metrics_switchback_exposes(
    switchback: StartProxy,
) -> None:
    proxy = await switchback(
        {
            "deprecations": [
                {
                    "id": "user-role",
                    "field": "user.role",
                    "deprecated": "2026-01-01",
                    "sunset": "2027-01-01",
                }
            ]
        }
    )
    async with aiohttp.ClientSession() as session, session.get(proxy.admin + "/metrics") as resp:
        text = await resp.text()
    types = re.findall(r"^# TYPE (switchback_[a-z0-9_]+) ", text, re.MULTILINE)
    exposed = {re.sub(r"_total$", "", n) for n in types}
    wanted = _metric_names_in_rules()
    assert wanted, "the rules name no metric"
    assert wanted <= exposed, f"not exposed by Switchback: {sorted(wanted - exposed)}"
