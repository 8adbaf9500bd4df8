"""The import contracts in pyproject.toml hold for the package, and they are not decoration: a
copy of the package with one forbidden import breaks the contract that forbids it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``proxy`` package found under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(  # noqa: S603 - our own tool, our own arguments
        [str(LINT_IMPORTS), str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "proxy", tmp_path / "proxy", ignore=skip)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, line: str) -> None:
    text = module.read_text()
    marker = "from __future__ import annotations\n"
    assert marker in text
    module.write_text(text.replace(marker, f"{marker}\n{line}  # noqa\n", 1))


def test_the_package_keeps_every_contract(copy: Path) -> None:
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("http/forward.py", "from proxy.traffic import control", "The data plane imports no"),
        ("traffic/steps.py", "from proxy.deprecation import telemetry", "Features do not import"),
        ("core/routing.py", "import time", "Pure modules do no I/O"),
        ("admin/api.py", "from proxy.app import runtime", "Nothing imports the command line"),
        ("demo/run.py", "from proxy.cli import commands", "The demo does not import the command"),
        ("journal/step.py", "from proxy.traffic import control", "The journal is a feature"),
        ("journal/replay.py", "from proxy.http import pool", "The journal is a feature"),
        ("traffic/steps.py", "from proxy.journal import entry", "Only the assembly and the"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(
    copy: Path, module: str, line: str, contract: str
) -> None:
    add_import(copy / "proxy" / module, line)
    result = lint_imports(copy)
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
