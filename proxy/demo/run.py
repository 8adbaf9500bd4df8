"""``switchback demo``: the sample releases, Switchback in front, and traffic to watch.

Theory of operation. Blue and green (``proxy.demo.sample_api``) run in this process on the ports
config/dev.yaml names; Switchback runs as a subprocess with that config, a fresh state
directory (so every demo starts at 90/10 with an empty ledger) and the admin token
``dev-token``. Once its admin API says ready, the phases of ``proxy.demo.phases`` run in order
(split, rollout, deprecations). Then the demo prints what to try by hand and runs until Ctrl-C
(``--no-wait``: exits after the phases), and stops everything: Switchback first (SIGTERM, it
drains), then the releases.

Exit status: 0 done (Ctrl-C included); 1 a port is busy, or Switchback failed to start or
died; 130 interrupted before the phases were done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from proxy.config.load import load_config
from proxy.demo.phases import PHASES, TOKEN, Demo, admin_call
from proxy.demo.sample_api import make_release_app
from proxy.errors import ConfigError
from proxy.schema import Config

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config" / "dev.yaml"
READY_TIMEOUT = 30.0


class DemoError(Exception):
    """A reason the demo cannot go on; ``str(err)`` is the whole message.

    Not in ``proxy.errors``' tree: like the CLI's own errors, it ends on a terminal."""


# --- starting and stopping --------------------------------------------------------------------


def host_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "//" in address else f"//{address}")
    if parts.hostname is None or parts.port is None:
        raise DemoError(f"{address}: expected host:port")
    return parts.hostname, parts.port


def check_ports(config: Config) -> None:
    """Refuse to start, naming the port, when any of the four addresses is taken."""
    wanted = {
        "the Switchback listener (listen)": config.listen,
        "the admin API (admin.listen)": config.admin.listen,
        **{f"the {name} release": rel.url for name, rel in config.releases.items()},
    }
    for what, address in wanted.items():
        host, port = host_port(address)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise DemoError(
                    f"port {port} on {host}, for {what} in {CONFIG.relative_to(REPO)}, is busy "
                    f"({exc.strerror}). Is another demo running? See: ss -ltnp 'sport = :{port}'"
                ) from None


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "  (no log)"
    return "\n".join(f"  | {line}" for line in text) or "  (empty log)"


async def start_release(name: str, url: str) -> tuple[web.AppRunner, web.Application]:
    app = make_release_app(name)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = host_port(url)
    await web.TCPSite(runner, host, port).start()
    return runner, app


async def start_proxy(work: Path) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "SWITCHBACK_ADMIN_TOKEN": TOKEN,
        "SWITCHBACK_STATE_DIR": str(work / "state"),
    }
    with (work / "switchback.log").open("wb") as log:
        # A session of its own: Ctrl-C reaches only the demo, which stops Switchback in order.
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy", "run", "--config", str(CONFIG),
            cwd=REPO, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def wait_ready(demo: Demo) -> None:
    url = demo.admin + "/readyz"
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if demo.proxy.returncode is not None:
            raise DemoError(
                f"Switchback exited with status {demo.proxy.returncode} while starting; "
                f"its log ({demo.log}):\n{log_tail(demo.log)}"
            )
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with demo.session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as resp:
                if resp.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise DemoError(f"{url} not ready after {READY_TIMEOUT:g} s; log:\n{log_tail(demo.log)}")


async def stop_proxy(proc: asyncio.subprocess.Process, grace: float = 15.0) -> None:
    if proc.returncode is not None:
        return
    proc.terminate()  # SIGTERM: Switchback drains in-flight requests, then exits
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()


async def try_it(demo: Demo) -> str:
    sb = Path(sys.executable).with_name("switchback")
    cli = _short(sb) if sb.exists() else "switchback"  # else hope it is on PATH
    base, admin = demo.base, demo.admin
    # Asking for a release by name shows most on the one that carries less traffic now.
    _, status = await admin_call(demo, "GET", "/status")
    weights = status.get("weights") or demo.config.traffic.weights
    minor = min(sorted(weights), key=lambda name: weights[name])
    releases = "  ".join(f"{n}: {r.url}" for n, r in demo.config.releases.items())
    notes = "".join(f"\nNote: {note}." for note in demo.notes)
    return f"""
== try it ==
{notes}
Switchback {base}   admin {admin}   {releases}
The status page (split, rollout, charts, the deprecation report): {admin}/

  curl -i -H 'X-Client-Id: web-app' {base}/users/1          # Deprecation, Sunset, Link headers
  curl -i -H 'X-Client-Id: web-app' '{base}/users?sort_by=name'
  curl -i -H 'X-Client-Id: web-app' {base}/v0/users/1        # a deprecated endpoint
  curl -i -H 'X-Fields: user(id,name)' {base}/users/1      # only the fields it reads
  curl -i -H 'X-Release: {minor}' {base}/users/1               # ask for a release by name
  curl -s {admin}/status
  curl -s {admin}/metrics | grep switchback_
  {cli} status
  {cli} report
  SWITCHBACK_ADMIN_TOKEN={TOKEN} {cli} rollback
  SWITCHBACK_ADMIN_TOKEN={TOKEN} {cli} promote

To see an automatic rollback, run the demo with a failing green:
  {_short(Path(sys.executable))} -m proxy demo --fail-rate 0.3

Switchback's log: {demo.log}
Press Ctrl-C to stop."""


def _short(path: Path) -> str:
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


async def wait_for_ctrl_c(demo: Demo) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    died = asyncio.ensure_future(demo.proxy.wait())
    await asyncio.wait((stopped, died), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not died.done():
        died.cancel()
        demo.out("\nstopping...")
        return 0
    demo.out(f"\nSwitchback exited with status {demo.proxy.returncode}:\n{log_tail(demo.log)}")
    return 1


async def run(args: argparse.Namespace) -> int:
    if not CONFIG.is_file():
        raise DemoError(
            f"{CONFIG} not found: the demo runs from a source checkout (git clone, then make demo)"
        )
    config = load_config(CONFIG, env={**os.environ, "SWITCHBACK_ADMIN_TOKEN": TOKEN})
    check_ports(config)
    runners: list[web.AppRunner] = []
    with tempfile.TemporaryDirectory(prefix="switchback-demo-") as tmp:
        work = Path(tmp)
        try:
            apps = {}
            for name, release in config.releases.items():
                runner, apps[name] = await start_release(name, release.url)
                runners.append(runner)
            print(f"blue and green up; starting Switchback ({CONFIG.relative_to(REPO)})")
            proxy = await start_proxy(work)
            try:
                async with aiohttp.ClientSession() as session:
                    demo = Demo(config, work, session, proxy, apps["green"], args.fail_rate)
                    await wait_ready(demo)
                    for phase in PHASES:
                        await phase(demo)
                    print(await try_it(demo) if not args.no_wait else "\n(--no-wait: stopping)")
                    return 0 if args.no_wait else await wait_for_ctrl_c(demo)
            finally:
                await stop_proxy(proxy)
        finally:
            for runner in reversed(runners):
                await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="switchback demo",
        description="Sample blue/green releases, Switchback in front, and traffic to watch.",
    )
    parser.add_argument("--no-wait", action="store_true", help="exit after the phases")
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="make green fail this share (0-1) of requests during the rollout, to see it "
        "rolled back automatically",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error(f"--fail-rate: {args.fail_rate} is not between 0 and 1")
    try:
        return asyncio.run(run(args))
    except (DemoError, ConfigError, OSError) as exc:  # OSError: a port taken since the check
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; everything stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
