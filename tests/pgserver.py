"""A real PostgreSQL server for the tests: ``initdb`` in a temporary directory, ``postgres`` on a
free loopback port with its unix socket in that directory, fsync off.

Run as root (CI, containers), initdb refuses: the server then runs as the ``postgres`` user
Debian's package creates (``runuser``). Without the binaries the tests that need one are
skipped, unless ``SWITCHBACK_REQUIRE_POSTGRES=1`` (``.ci/run``), where they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid

import pytest

BIN_GLOB = "/usr/lib/postgresql/*/bin"
START_TIMEOUT = 30.0


def pg_bin() -> str | None:
    """The newest installed PostgreSQL bin directory with initdb, or None."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(p.split("/")[-2].split(".")[0]))
    for folder in reversed(found):
        if os.access(os.path.join(folder, "initdb"), os.X_OK):
            return folder
    return None


def require_bin() -> str:
    folder = pg_bin()
    if folder is None:
        if os.environ.get("SWITCHBACK_REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL binaries missing (apt-get install postgresql)")
        pytest.skip("PostgreSQL binaries missing (SWITCHBACK_REQUIRE_POSTGRES=1 requires them)")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    def __init__(self, folder: str) -> None:
        self.bin = folder
        self.root = tempfile.mkdtemp(prefix="switchback-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self._run(
            "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"
        )
        self.user = "postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [os.path.join(self.bin, tool), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50"
        )
        log = os.path.join(self.root, "server.log")
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", log, "-w", "-t", "30", "start")
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            ready = self._run("pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False)
            if ready.returncode == 0:
                return
            time.sleep(0.1)  # polling pg_isready, bounded by START_TIMEOUT
        raise RuntimeError(f"PostgreSQL did not start within {START_TIMEOUT} s (see {log})")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)
