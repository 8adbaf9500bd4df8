"""The servers of one benchmark run: started in a session of their own, waited for, stopped.

Everything listens on loopback on ports picked free; every config and log lives in the run's
temporary directory, and ``Processes`` stops what it started, in reverse order.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import configs
from configs import HOST


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "(empty log)"


class StartError(RuntimeError):
    pass


@dataclass
class Processes:
    """The servers of one run, stopped in reverse order by ``stop_all`` (idempotent)."""

    work: Path
    started: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            # A session of its own: a Ctrl-C in the terminal reaches only bench.py, which then
            # stops everything in order instead of racing the servers' own SIGINT handling.
            proc = subprocess.Popen(  # noqa: S603 - fixed argv
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=cwd,
            )
        self.started.append((name, proc, log))
        return proc

    def fail(self, name: str, message: str) -> StartError:
        log = next((log for n, _, log in self.started if n == name), self.work / f"{name}.log")
        return StartError(f"{name}: {message}\n  last lines of {log}:\n{log_tail(log)}")

    def wait_port(self, name: str, port: int, timeout: float = 15.0) -> None:
        def listening() -> bool:
            try:
                with socket.create_connection((HOST, port), timeout=0.5):
                    return True
            except OSError:
                return False

        what = f"nothing listening on {HOST}:{port} after {timeout:g} s"
        self._wait(name, listening, timeout, 0.05, what)

    def wait_ready(self, name: str, url: str, timeout: float = 30.0) -> None:
        def ready() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=1.0) as resp:  # noqa: S310 - loopback
                    return bool(resp.status == 200)
            except (OSError, urllib.error.URLError):
                return False

        self._wait(name, ready, timeout, 0.1, f"{url} did not answer 200 within {timeout:g} s")

    def _wait(
        self, name: str, probe: Callable[[], bool], timeout: float, pause: float, what: str
    ) -> None:
        """Run ``probe`` every ``pause`` seconds until it is true; fail if ``name`` exits first."""
        proc = self._proc(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise self.fail(name, f"exited with status {proc.returncode} while starting")
            if probe():
                return
            time.sleep(pause)
        raise self.fail(name, what)

    def _proc(self, name: str) -> subprocess.Popen[bytes]:
        return next(proc for n, proc, _ in self.started if n == name)

    def stop_all(self, grace: float = 10.0) -> None:
        while self.started:
            name, proc, _ = self.started.pop()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    print(f"  {name} ignored SIGTERM for {grace:g} s: killing it", file=sys.stderr)
                    proc.kill()
                    proc.wait()


def plain_upstream(work: Path, nginx: str) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """One nginx serving the benchmark's bodies for blue and green (no ETags), for the
    side-by-side tools (``ab.py``, ``instructions.py``): the process and release -> port."""
    import bodies

    site = work / "site"
    bodies.write_site(site)
    ports = {"blue": free_port(), "green": free_port()}
    conf = work / "upstream.conf"
    conf.write_text(configs.upstream_nginx_conf(work, site, ports, {}, free_port()))
    argv = [nginx, "-p", str(work), "-e", str(work / "upstream-error.log"), "-c", str(conf)]
    return subprocess.Popen(argv), ports  # noqa: S603 - our own nginx config


def start_checkout(
    work: Path, name: str, checkout: str, config_text: str
) -> subprocess.Popen[bytes]:
    """``python -m proxy run`` of ``checkout``'s package with ``config_text`` (the side-by-side
    tools' fronts, ``ab.py`` and ``threads.py``): its config and log in ``work``."""
    path = work / f"{name}.yaml"
    path.write_text(config_text)
    log = (work / f"{name}.log").open("wb")
    argv = [sys.executable, "-m", "proxy", "run", "--config", str(path)]
    return subprocess.Popen(argv, cwd=Path(checkout).resolve(), stdout=log, stderr=log)  # noqa: S603


def await_ready(url: str, tries: int = 600, pause: float = 0.2) -> None:
    """Poll ``url`` until it answers (a front started by a side-by-side tool)."""
    for _ in range(tries):
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback only
            return
        except (OSError, urllib.error.URLError):
            time.sleep(pause)
    raise SystemExit(f"{url} never answered")


def get_in_sequence(port: int, path: str, n: int) -> None:
    """``n`` GETs of ``path``, one after the other on one keep-alive connection, each with an
    ``X-Client-Id`` from a set of 50; each response is read whole before the next request."""
    with socket.create_connection((HOST, port)) as sock, sock.makefile("rb") as f:
        for i in range(n):
            sock.sendall(
                b"GET %s HTTP/1.1\r\nHost: h\r\nX-Client-Id: c-%d\r\n\r\n" % (path.encode(), i % 50)
            )
            length = 0
            while (line := f.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            f.read(length)


@contextmanager
def scratch(prefix: str) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """A temporary directory and a list for the processes a side-by-side tool starts; on the
    way out every process listed is stopped and the directory removed."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        yield work, procs
    finally:
        stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate every process, then wait for each (the side-by-side tools' clean-up)."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def one_front_parser(doc: str) -> argparse.ArgumentParser:
    """The arguments of the tools that run one front of one checkout (``instructions.py``,
    ``opcodes.py``): the checkout (this one by default), the variant and the path asked for."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("checkout", nargs="?", default=str(Path(__file__).resolve().parent.parent))
    p.add_argument("--variant", default="plain", choices=sorted(configs.VARIANTS))
    p.add_argument("--path", default="/users/1", help="/users/1 (1 KB) or /users/100 (100 KB)")
    return p
