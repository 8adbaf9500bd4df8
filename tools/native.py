"""Compiles the data plane (``proxy.http.native.MODULES``) to C extensions with mypyc, in place.

    .venv/bin/python tools/native.py build   # what make runs; a no-op without a C compiler
    .venv/bin/python tools/native.py check   # exit 1 if compiled modules are older than a source
    .venv/bin/python tools/native.py clean   # remove them: the sources run again

The extensions sit beside their sources, and Python imports them instead. ``build`` needs a C
compiler and Python's headers; without them it says so, removes any extension left from an
earlier build and leaves the sources in use (or fails, with ``SWITCHBACK_REQUIRE_NATIVE=1``,
as in CI). mypyc compiles against the types of every module the compiled ones import, so a
change to any source of the package calls for a new build: make rebuilds when one is newer
than the last build, and ``check`` (which the test suite runs first) refuses a build that is
older than a source.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from proxy.http.native import GROUP, MODULES  # noqa: E402

SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)
BUILD_TEMP = ROOT / "build" / "native"


def source(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def extensions() -> list[Path]:
    """The compiled files in the package: one per module of a build, and the shared library."""
    return [p for p in (ROOT / "proxy").rglob("*") if p.name.endswith(SUFFIXES)]


def expected() -> set[Path]:
    """The compiled files a build makes (the suffix of this Python)."""
    names = (*MODULES, GROUP + "__mypyc")
    return {ROOT.joinpath(*m.split(".")).with_name(m.split(".")[-1] + SUFFIXES[0]) for m in names}


def compiler() -> str | None:
    """Why this machine cannot compile, or None when it can."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        return f"no C compiler ({cc})"
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.exists():
        return f"no Python headers ({include})"
    return None


def clean() -> int:
    for path in extensions():
        path.unlink()
    shutil.rmtree(BUILD_TEMP, ignore_errors=True)
    return 0


def build() -> int:
    clean()
    missing = compiler()
    if missing is not None:
        if os.environ.get("SWITCHBACK_REQUIRE_NATIVE"):  # CI: the compiled build must be tested
            print(f"native: {missing}, and SWITCHBACK_REQUIRE_NATIVE is set")
            return 1
        print(f"native: {missing}: the data plane runs as Python (the same code, slower)")
        return 0
    started = time.monotonic()
    # mypyc runs setuptools' build_ext; a child process keeps its state and output apart.
    code = (
        "import sys\n"
        "from setuptools import Distribution\n"
        "from mypyc.build import mypycify\n"
        f"ext = mypycify({[str(source(m).relative_to(ROOT)) for m in MODULES]!r},"
        f" group_name={GROUP!r}, opt_level='3')\n"
        "dist = Distribution({'name': 'switchback-native', 'ext_modules': ext})\n"
        "cmd = dist.get_command_obj('build_ext')\n"
        f"cmd.inplace = True\ncmd.build_temp = {str(BUILD_TEMP / 'temp')!r}\n"
        f"cmd.build_lib = {str(BUILD_TEMP / 'lib')!r}\n"
        "dist.run_command('build_ext')\n"
    )
    log = BUILD_TEMP.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        clean()
        tail = log.read_text(errors="replace").strip().splitlines()[-15:]
        print("\n".join(tail))
        print(f"native: mypyc failed (the whole output: {log})")
        return 1
    for path in extensions():  # build_ext copies what it did not relink with its old time
        os.utime(path)
    took = time.monotonic() - started
    print(f"native: {len(MODULES)} modules compiled in {took:.0f} s ({GROUP}__mypyc)")
    return 0


def check() -> int:
    built = extensions()
    if not built:
        return 0
    if set(built) != expected():
        print(f"native: {len(built)} compiled files for {len(MODULES)} modules: run make native")
        return 1
    oldest = min(p.stat().st_mtime for p in built)
    newer = [p for p in (ROOT / "proxy").rglob("*.py") if p.stat().st_mtime > oldest]
    if newer:
        names = ", ".join(str(p.relative_to(ROOT)) for p in newer[:3])
        print(f"native: the compiled data plane is older than {names}: run make native")
        return 1
    return 0


def main(argv: list[str]) -> int:
    commands = {"build": build, "check": check, "clean": clean}
    if len(argv) != 1 or argv[0] not in commands:
        print(__doc__)
        return 2
    os.chdir(ROOT)
    return commands[argv[0]]()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
