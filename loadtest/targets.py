"""What the benchmark measures: generated bodies, server configs, and the processes serving them.

    wrk ──▶ direct         upstream nginx "blue" (static JSON files)
    wrk ──▶ nginx front    1 worker, split_clients 90/10 on X-Client-Id ──▶ blue | green
    wrk ──▶ switchback     the same split (sticky hash), uvloop        ──▶ blue | green

The upstreams are one nginx (its own process, one worker) with two server blocks, so the
upstream is the same fast static server for every leg. Everything listens on loopback, every
config and log lives in the run's temporary directory, and ``Processes`` stops what it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HOST = "127.0.0.1"
CLIENT_HEADER = "X-Client-Id"
# The path names the body size, so a reader of a wrk line sees what was fetched.
SIZES = {"1KB": ("/users/1", 1024), "100KB": ("/users/100", 100 * 1024)}
DEPRECATED_FIELD = "user.role"


@dataclass(frozen=True)
class Target:
    """One thing wrk hits, and whose memory counts: ``pid`` (None: not measured), or its first
    child when ``worker`` is set (nginx: the master only supervises, the worker proxies)."""

    name: str
    base_url: str
    pid: int | None = None
    worker: bool = False
    expect_headers: tuple[str, ...] = ()  # response headers a correct answer carries
    refuse_headers: tuple[str, ...] = ()  # ... and headers it must not carry


# --- bodies -----------------------------------------------------------------------------------


def make_body(size: int, release: str) -> bytes:
    """A JSON document of exactly ``size`` bytes shaped like the sample API's answers.

    A ``user`` object carrying the deprecated ``role`` (so a rule on ``user.role`` matches),
    then a list of small items: a 100 KB body is ~1,700 objects, as a long list page would be,
    which is what makes inspecting it cost something.
    """
    user: dict[str, object] = {"id": 1, "name": "Ada Lovelace", "role": "admin"}
    if release == "green":
        user["roles"] = ["admin"]
    head = _json({"user": user})[:-1] + b',"items":['
    tail = b'],"pad":"%s"}'
    items: list[bytes] = []
    length = len(head) + len(tail) - 2  # without the padding ("%s" is not part of the body)
    while True:
        i = len(items) + 1
        item = _json({"id": i, "name": f"user-{i:05d}", "role": "member", "team": f"t{i % 17}"})
        extra = len(item) + (1 if items else 0)  # the comma before every item but the first
        if length + extra > size:
            break
        items.append(item)
        length += extra
    if length > size:
        raise ValueError(f"{size} bytes is too small for a body")
    return head + b",".join(items) + tail % (b"x" * (size - length))


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def write_site(root: Path) -> None:
    """``root/<release>/users/<n>``: the files the upstream nginx serves."""
    for release in ("blue", "green"):
        for path, size in SIZES.values():
            file = root / release / path.lstrip("/")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(make_body(size, release))


# --- configs ----------------------------------------------------------------------------------


def _nginx_main(name: str, work: Path) -> str:
    # Run as root (a container, CI), nginx would start its workers as "nobody", who cannot read
    # the private temp dir; keep them as the invoking user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    tmp = work / f"{name}-tmp"
    tmp.mkdir(exist_ok=True)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
daemon off;
pid {work / name}.pid;
error_log {work / name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    # Both sides keep connections for the whole run (nginx's default closes after 1000).
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{temp_paths}
"""


def upstream_nginx_conf(work: Path, site: Path, blue: int, green: int) -> str:
    servers = "".join(
        f"""    server {{
        listen {HOST}:{port};
        root {site / release};
        add_header X-Release {release};
    }}
"""
        for release, port in (("blue", blue), ("green", green))
    )
    return (
        _nginx_main("upstream", work)
        + """    types { }
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=64;
"""
        + servers
        + "}\n"
    )


def front_nginx_conf(work: Path, listen: int, blue: int, green: int) -> str:
    # split_clients hashes with MurmurHash2 and Switchback with BLAKE2b, so the two fronts send
    # different clients to green; both send 10% of them, and both upstreams serve the same bytes.
    return (
        _nginx_main("front", work)
        + f"""    split_clients "${{http_x_client_id}}" $release {{
        10% green;
        *   blue;
    }}
    upstream blue {{ server {HOST}:{blue}; keepalive 64; keepalive_requests 1000000; }}
    upstream green {{ server {HOST}:{green}; keepalive 64; keepalive_requests 1000000; }}
    server {{
        listen {HOST}:{listen};
        location / {{
            proxy_pass http://$release;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Room for a whole 100 KB body in memory: nginx's default buffers (8 x 4 KB) would
            # spill it to a temp file on disk, which would measure the disk, not the proxy.
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_max_temp_file_size 0;
            add_header X-Served-By $release always;
        }}
    }}
}}
"""
    )


def switchback_conf(
    work: Path, variant: str, listen: int, admin: int, blue: int, green: int
) -> str:
    rules = (
        f"""deprecations:
  - id: user-role
    field: {DEPRECATED_FIELD}
    deprecated: 2025-01-01
    sunset: 2027-01-01
    link: https://api.example.com/docs/deprecations/user-role
"""
        if variant.startswith("rules")
        else ""
    )
    if variant == "rules-nocache":  # every response held and parsed, ETag or not
        rules += "telemetry:\n  etag_cache: 0\n"
    return f"""# Generated by loadtest/bench.py: variant "{variant}".
listen: {HOST}:{listen}
admin:
  listen: {HOST}:{admin}
  token: bench-token
state_dir: {work / f"state-{variant}"}
releases:
  blue: {{url: "http://{HOST}:{blue}"}}
  green: {{url: "http://{HOST}:{green}"}}
traffic:
  stable: blue
  weights: {{blue: 90, green: 10}}
clients:
  id_header: {CLIENT_HEADER}
{rules}"""


# --- processes --------------------------------------------------------------------------------


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


# --- memory -----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS of ``pid`` in KiB, from /proc/<pid>/status."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out
