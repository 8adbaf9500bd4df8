"""The compiled data plane (proxy/http/native.py): the modules the tests import are the build
asked for, every one of them, and ``SWITCHBACK_PURE_PYTHON`` gives the sources."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys

import pytest

from proxy.http import native
from tools.native import ROOT, SUFFIXES, expected, source

BUILT = {path.exists() for path in expected()}  # {False}, {True}, or a partial build


def test_every_module_named_has_its_source() -> None:
    for module in native.MODULES:
        assert source(module).is_file(), module


def test_no_compiled_module_defines_a_msgspec_struct() -> None:
    """A Struct's class options (``frozen``, ``kw_only``, ``array_like``) are lost when its
    module is compiled: a frozen config would become mutable."""
    for module in native.MODULES:
        tree = ast.parse(source(module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not bases & {"msgspec.Struct", "Struct"}, (module, node.name)


def test_the_modules_imported_are_the_build_on_disk() -> None:
    pure = bool(os.environ.get("SWITCHBACK_PURE_PYTHON"))
    assert len(BUILT) == 1, "some modules are compiled and others not: run make native"
    compiled = BUILT == {True} and not pure
    for module in native.MODULES:
        path = importlib.import_module(module).__file__ or ""
        assert path.endswith(SUFFIXES if compiled else ".py"), (module, path)


@pytest.mark.skipif(BUILT != {True}, reason="no compiled data plane on this machine")
def test_pure_python_imports_the_sources_beside_the_extensions() -> None:
    code = (
        "import importlib, json, sys\n"
        "from proxy.http import native\n"
        "files = [importlib.import_module(m).__file__ for m in native.MODULES]\n"
        "import json as other\n"  # a module outside the package is found as ever
        "print(json.dumps([files, other.__file__]))\n"
    )
    env = {**os.environ, "SWITCHBACK_PURE_PYTHON": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, check=True
    )
    files, other = json.loads(out.stdout)
    assert all(f.endswith(".py") for f in files), files
    assert other.endswith("json/__init__.py")
