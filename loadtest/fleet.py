"""``make bench-fleet``: how fast a fleet of three replicas follows one change, measured.

Starts a real ``redis-server`` and three ``python -m proxy run`` replicas on loopback (with
blue and green upstreams in this process) and sends traffic through all three, then measures:

1. **rollback propagation** (``--rollbacks``, default 20): the time from ``POST /rollback``
   (what ``switchback rollback`` sends) on one replica, a different one each time, until every
   replica sends its next request to the stable release. Each replica carries a client loop
   asking for green (``X-Release: green``), which a rollback takes out of service for every
   client; a replica's figure is when the first request it sent after the rollback call was
   answered by blue, the fleet's figure the slowest replica's.
2. **leader failover** (``--failovers``, default 3): the leader is killed with SIGKILL; the
   time until another replica holds the lease (default ``coordination.lease_seconds``: 3 s).
3. **Redis restart** (``--restarts``, default 3): Redis is killed (no persistence: it returns
   empty), one replica rolls back while it is away, Redis is started again; the time until
   every replica is on one version with the rollback in force, and how many were left behind.

Prints the figures and, with ``--json FILE``, writes them. Needs ``redis-server``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEY = "switchback:bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


class Redis:
    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.work = work
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.work),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            except OSError:
                await asyncio.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


class Replica:
    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.port = self.admin_port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def wait_listening(self) -> None:
        assert self.proc.stderr is not None
        async with asyncio.timeout(30):
            while line := (await self.proc.stderr.readline()).decode(errors="replace"):
                if "listening on" in line:
                    ports = [int(p.split(":")[-1].rstrip("),")) for p in line.split()
                             if p.startswith("127.0.0.1:")]  # fmt: skip
                    self.port, self.admin_port = ports[0], ports[1]
                    asyncio.get_running_loop().create_task(self._drain())
                    return
        raise RuntimeError(f"{self.name} exited")

    async def _drain(self) -> None:
        assert self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass


async def upstream(name: str) -> tuple[str, web.AppRunner]:
    async def handle(request: web.Request) -> web.Response:
        return web.json_response({"release": name})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return f"http://127.0.0.1:{port}", runner


async def start_replica(work: Path, name: str, urls: dict[str, str], redis_url: str) -> Replica:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = {
        "listen": "127.0.0.1:0",
        "admin": {"listen": "127.0.0.1:0", "token": TOKEN},
        "state_dir": str(d / "state"),
        "releases": {k: {"url": v} for k, v in urls.items()},
        "traffic": {"stable": "blue", "weights": {"blue": 100, "green": 0},
                    "override_header": "X-Release"},
        "coordination": {"redis": redis_url, "key": KEY, "replica": name},
    }  # fmt: skip
    path = d / "switchback.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy", "run", "--config", str(path), cwd=REPO,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    replica = Replica(name, proc)
    await replica.wait_listening()
    return replica


class Loads:
    """One client loop per replica asking for green: (sent at, served by) per replica."""

    def __init__(self, session: aiohttp.ClientSession, replicas: list[Replica]) -> None:
        self.session = session
        self.replicas = replicas
        self.seen: dict[str, list[tuple[float, str]]] = {r.name: [] for r in replicas}
        self.stop = False
        self.tasks = [asyncio.create_task(self._loop(r)) for r in replicas]

    async def _loop(self, r: Replica) -> None:
        while not self.stop:
            sent = time.monotonic()
            try:
                async with self.session.get(r.url + "/x", headers={"X-Release": "green"}) as resp:
                    await resp.read()
                    self.seen[r.name].append((sent, resp.headers.get("X-Served-By", "?")))
            except aiohttp.ClientError:
                await asyncio.sleep(0.01)

    def first_after(self, name: str, t0: float, release: str) -> float | None:
        for sent, served in self.seen[name]:
            if sent >= t0 and served == release:
                return sent
        return None

    async def wait_all(self, t0: float, release: str, timeout: float = 10) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            found = {r.name: self.first_after(r.name, t0, release) for r in self.replicas}
            if all(v is not None for v in found.values()):
                return {k: v - t0 for k, v in found.items() if v is not None}
            if time.monotonic() > deadline:
                raise RuntimeError(f"not every replica reached {release}: {found}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self.stop = True
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def admin(
    s: aiohttp.ClientSession, r: Replica, method: str, path: str, body: Any = None
) -> Any:
    async with s.request(method, r.admin + path, json=body, headers=AUTH) as resp:
        answer = await resp.json(content_type=None)
        if resp.status != 200:
            raise RuntimeError(f"{method} {path} on {r.name}: {resp.status} {answer}")
        return answer


async def metric(s: aiohttp.ClientSession, r: Replica, name: str) -> dict[str, float]:
    async with s.get(r.admin + "/metrics", headers=AUTH) as resp:
        text = await resp.text()
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith(name)}  # fmt: skip


async def until(check: Any, timeout: float, what: str, interval: float = 0.01) -> float:
    """Poll ``check()`` until true; the seconds it took."""
    t0 = time.monotonic()
    while not await check():
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - t0


async def in_service(s: aiohttp.ClientSession, reps: list[Replica], loads: Loads) -> None:
    t = time.monotonic()
    await admin(s, reps[0], "PUT", "/traffic", {"weights": {"green": 50}})
    await loads.wait_all(t, "green")


async def rollbacks(s: aiohttp.ClientSession, reps: list[Replica], n: int) -> dict[str, Any]:
    loads = Loads(s, reps)
    fleet: list[float] = []
    others: list[float] = []
    try:
        for i in range(n):
            await in_service(s, reps, loads)
            target = reps[i % len(reps)]
            t0 = time.monotonic()
            await admin(s, target, "POST", "/rollback", {"reason": "bench"})
            times = await loads.wait_all(t0, "blue")
            fleet.append(max(times.values()))
            others.extend(v for k, v in times.items() if k != target.name)
    finally:
        await loads.close()
    ms = [v * 1000 for v in fleet]
    return {"rollbacks": n, "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(pct(ms, 0.99), 1), "max_ms": round(max(ms), 1),
            "other_replicas_p50_ms": round(statistics.median(others) * 1000, 1)}  # fmt: skip


async def leader(s: aiohttp.ClientSession, r: Replica) -> str | None:
    try:
        view = await admin(s, r, "GET", "/fleet")
    except (aiohttp.ClientError, RuntimeError):
        return None
    return view.get("leader")


async def failovers(s: aiohttp.ClientSession, reps: list[Replica], n: int, start: Any) -> Any:
    took = []
    for _ in range(n):
        await until(lambda: _has_leader(s, reps[0]), 15, "a leader")
        name = await leader(s, reps[0])
        victim = next(r for r in reps if r.name == name)
        alive = [r for r in reps if r is not victim]
        victim.proc.kill()
        t0 = time.monotonic()
        await victim.proc.wait()

        async def moved(alive: list[Replica] = alive, name: str | None = name) -> bool:
            return (await leader(s, alive[0])) not in (None, name)

        await until(moved, 20, "a new leader", 0.005)
        took.append(time.monotonic() - t0)
        reps[reps.index(victim)] = await start(victim.name)
    return {"failovers": n, "seconds": [round(t, 3) for t in took],
            "max_s": round(max(took), 3)}  # fmt: skip


async def _has_leader(s: aiohttp.ClientSession, r: Replica) -> bool:
    return (await leader(s, r)) is not None


async def restarts(s: aiohttp.ClientSession, reps: list[Replica], redis: Redis, n: int) -> Any:
    took, behind = [], []
    for i in range(n):
        await admin(s, reps[0], "PUT", "/traffic", {"weights": {"green": 50}})
        await until(lambda: _all(s, reps, lambda x: x["weights"]["green"] == 50), 10, "50%")
        await redis.kill()

        async def away() -> bool:
            vals = [await metric(s, r, "switchback_coordination_state") for r in reps]
            return all(v.get('switchback_coordination_state{state="disconnected"}') == 1
                       for v in vals)  # fmt: skip

        await until(away, 15, "every replica disconnected")
        await admin(s, reps[i % len(reps)], "POST", "/rollback", {"reason": "while away"})
        await redis.start()
        t0 = time.monotonic()

        async def converged() -> bool:
            versions = {(await metric(s, r, "switchback_state_version")).get(
                "switchback_state_version") for r in reps}  # fmt: skip
            done = await _all(s, reps, lambda x: x["out_of_service"] == "green")
            return done and len(versions) == 1

        try:
            await until(converged, 15, "every replica in step", 0.02)
            took.append(time.monotonic() - t0)
            behind.append(0)
        except RuntimeError:
            found = [await admin(s, r, "GET", "/status") for r in reps]
            left = [st for st in found if st["out_of_service"] != "green"]
            behind.append(len(left))
    return {"restarts": n, "seconds": [round(t, 3) for t in took],
            "left_behind": behind}  # fmt: skip


async def _all(s: aiohttp.ClientSession, reps: list[Replica], ok: Any) -> bool:
    found = [await admin(s, r, "GET", "/status") for r in reps]
    return all(ok(st) for st in found)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="switchback-fleet-"))
    redis = Redis(work)
    runners = []
    reps: list[Replica] = []
    try:
        await redis.start()
        urls = {}
        for name in ("blue", "green"):
            urls[name], runner = await upstream(name)
            runners.append(runner)

        async def start(name: str) -> Replica:
            return await start_replica(work, name, urls, redis.url)

        reps = [await start(f"r{i}") for i in range(3)]
        async with aiohttp.ClientSession() as s:
            out: dict[str, Any] = {"replicas": 3}
            out["rollback"] = await rollbacks(s, reps, args.rollbacks)
            print("rollback propagation:", out["rollback"], flush=True)
            out["failover"] = await failovers(s, reps, args.failovers, start)
            print("leader failover:", out["failover"], flush=True)
            out["redis_restart"] = await restarts(s, reps, redis, args.restarts)
            print("redis restart:", out["redis_restart"], flush=True)
        return out
    finally:
        for r in reps:
            if r.proc.returncode is None:
                r.proc.terminate()
                await r.proc.wait()
        for runner in runners:
            await runner.cleanup()
        await redis.kill()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rollbacks", type=int, default=20)
    p.add_argument("--failovers", type=int, default=3)
    p.add_argument("--restarts", type=int, default=3)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    if shutil.which("redis-server") is None:
        print("bench-fleet needs redis-server (Debian: apt-get install redis-server)")
        return 2
    out = asyncio.run(run(args))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
