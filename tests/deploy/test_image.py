"""The image itself, built and run with Docker: skipped where there is no Docker daemon or the
base image is not already there (the build must not depend on a registry being reachable).

The image runs with a read-only root filesystem, a tmpfs on /tmp, the production config
mounted read-only and a fresh state volume, as the README's `docker run` line has it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.dockerfile import stages

REPO = Path(__file__).resolve().parents[2]
BASE = stages(REPO / "Dockerfile")[-1].base


def docker(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def docker_ready() -> str | None:
    """Why the image cannot be built here, or None."""
    if shutil.which("docker") is None:
        return "no docker command"
    if docker("info").returncode != 0:
        return "no Docker daemon"
    if docker("image", "inspect", BASE).returncode != 0:
        return f"the base image {BASE} is not present (no registry is reached from tests)"
    return None


pytestmark = pytest.mark.skipif(docker_ready() is not None, reason=str(docker_ready()))


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    tag = f"switchback-test:{uuid.uuid4().hex[:8]}"
    built = docker("build", "--pull=false", "-t", tag, str(REPO), timeout=900)
    assert built.returncode == 0, built.stderr[-4000:]
    yield tag
    docker("image", "rm", "-f", tag)


def wait_ready(url: str, container: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            logs = docker("logs", container).stderr
            raise AssertionError(f"{url} not ready in {timeout} s:\n{logs}")
        time.sleep(0.2)  # polling for the readiness the test waits for


def test_the_image_serves_read_only_as_an_unprivileged_user(image: str) -> None:
    name = f"switchback-test-{uuid.uuid4().hex[:8]}"
    volume = f"{name}-state"
    env = {"SWITCHBACK_ADMIN_TOKEN": uuid.uuid4().hex, "SWITCHBACK_API_KEY_SECRET": "k" * 32}
    run = docker(
        "run", "-d", "--name", name, "--read-only", "--tmpfs", "/tmp",
        "-p", "127.0.0.1::9901",
        "-v", f"{REPO / 'config' / 'production.yaml'}:/etc/switchback/config.yaml:ro",
        "-v", f"{volume}:/var/lib/switchback",
        "-e", "SWITCHBACK_ADMIN_TOKEN", "-e", "SWITCHBACK_API_KEY_SECRET",
        image,
        env=env,
    )  # fmt: skip
    try:
        assert run.returncode == 0, run.stderr
        port = docker("port", name, "9901/tcp").stdout.split(":")[-1].strip()
        wait_ready(f"http://127.0.0.1:{port}/readyz", name)
        assert docker("exec", name, "id", "-u").stdout.strip() == "10001"
        assert docker("exec", name, "sh", "-c", "command -v gcc cc make").stdout == ""
        files = docker("exec", name, "ls", "/var/lib/switchback").stdout.split()
        assert "traffic.json" in files, files
        inspect = json.loads(docker("inspect", name).stdout)[0]
        assert inspect["Config"]["Labels"]["io.switchback.state"] == "/var/lib/switchback"
    finally:
        docker("rm", "-f", name)
        docker("volume", "rm", "-f", volume)
