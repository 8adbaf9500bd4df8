"""What wrk hits: every target started, then checked by one request before anything is measured.

    wrk ──▶ direct              the upstream nginx, blue (static JSON files, no ETag)
    wrk ──▶ nginx               the nginx front, one worker ──▶ blue | green
    wrk ──▶ switchback[+rules]  Switchback, one process per variant ──▶ blue | green

Each target names the process whose CPU time and memory count: for nginx its one worker (the
master only supervises), for Switchback its one process. The upstream serves every leg, so
``direct`` is also how the benchmark reads the upstream's own CPU during the other runs.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import bodies
import configs
import orjson
import procstat
from configs import (
    CLIENT_HEADER,
    ETAG_VARIANTS,
    FIELD_VARIANTS,
    FIELDS,
    FIELDS_HEADER,
    HOST,
    VARIANTS,
)
from processes import Processes, StartError, free_port

from proxy.core.fieldselect import parse_fields, prune

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    base_url: str
    kind: str  # "nginx" or "switchback": how its answered count is read (see answered.py)
    pid: int  # the process whose CPU and memory count
    count_url: str  # stub_status page or admin /metrics
    variant: str | None = None  # Switchback's, one of configs.VARIANTS

    @property
    def is_front(self) -> bool:
        return self.name != "direct"

    @property
    def rules(self) -> tuple[str, ...]:
        return VARIANTS[self.variant] if self.variant else ()

    @property
    def wrk_args(self) -> tuple[str, ...]:
        """The header every request of this target carries besides the client id."""
        return (FIELDS_HEADER, FIELDS) if self.variant in FIELD_VARIANTS else ()

    def expected(self, file: bytes) -> bytes:
        """The body this target must answer for the upstream's ``file``: the file itself, or
        (field selection) the file pruned to ``FIELDS``."""
        if self.variant not in FIELD_VARIANTS:
            return file
        return orjson.dumps(prune(orjson.loads(file), parse_fields(FIELDS)))


def switchback_name(variant: str) -> str:
    return "switchback" if variant == "plain" else f"switchback+{variant}"


def start(procs: Processes, nginx_bin: str, variants: list[str], site: Path) -> list[Target]:
    """Start the upstream serving ``site``, the nginx front and one Switchback per variant;
    ``direct`` (the upstream) comes first."""
    work = procs.work
    plain = {release: free_port() for release in bodies.RELEASES}
    etag = {release: free_port() for release in bodies.RELEASES}

    def nginx(name: str, conf_text: str, port: int, status: int) -> Target:
        conf = work / f"nginx-{name}.conf"
        conf.write_text(conf_text)
        argv = [nginx_bin, "-p", str(work), "-e", str(work / f"{name}-error.log"), "-c", str(conf)]
        proc = procs.start(f"nginx-{name}", argv)
        procs.wait_port(f"nginx-{name}", port)
        status_url = f"http://{HOST}:{status}/"
        procs.wait_ready(f"nginx-{name}", status_url)  # answered: the worker exists
        workers = procstat.children(proc.pid)
        if len(workers) != 1:
            raise procs.fail(f"nginx-{name}", f"has {len(workers)} worker processes, expected 1")
        target = "direct" if name == "upstream" else "nginx"
        return Target(target, f"http://{HOST}:{port}", "nginx", workers[0], status_url)

    status = free_port()
    upstream = configs.upstream_nginx_conf(work, site, plain, etag, status)
    out = [nginx("upstream", upstream, plain["blue"], status)]
    front, status = free_port(), free_port()
    out.append(nginx("front", configs.front_nginx_conf(work, front, plain, status), front, status))
    for variant in variants:
        name = switchback_name(variant)
        listen, admin = free_port(), free_port()
        conf = work / f"{name}.yaml"
        ports = etag if variant in ETAG_VARIANTS else plain
        conf.write_text(configs.switchback_conf(work, variant, listen, admin, ports))
        argv = [sys.executable, "-m", "proxy", "run", "--config", str(conf)]
        proc = procs.start(name, argv, cwd=REPO)
        procs.wait_ready(name, f"http://{HOST}:{admin}/readyz")
        metrics = f"http://{HOST}:{admin}/metrics"
        out.append(
            Target(name, f"http://{HOST}:{listen}", "switchback", proc.pid, metrics, variant)
        )
    return out


def check(target: Target, size: str, files: dict[tuple[str, str], bytes]) -> None:
    """One request by hand before measuring: a fast wrong answer must not pass for speed.

    The body must be the very file of the release that served it (``X-Release``, set by the
    upstream), a front must say so in ``X-Served-By``, a variant with rules must send
    ``Deprecation`` and the others none, and only the ETag variant may carry an ``ETag``.
    """
    path = bodies.SIZES[size][0]
    sent = {CLIENT_HEADER: "check-1"}
    if target.wrk_args:
        sent[target.wrk_args[0]] = target.wrk_args[1]
    request = urllib.request.Request(target.base_url + path, headers=sent)
    try:
        resp = urllib.request.urlopen(request, timeout=5)  # noqa: S310 - loopback only
    except (OSError, urllib.error.URLError) as exc:  # HTTPError (a 4xx/5xx) is a URLError
        raise StartError(f"{target.name}: GET {path} failed: {exc}") from None
    with resp:
        body = resp.read()
        headers = resp.headers
    release = headers.get("X-Release", "")
    file = files.get((release, size))
    expected = None if file is None else target.expected(file)
    problems = []
    if resp.status != 200:
        problems.append(f"status {resp.status}")
    if expected is None:
        problems.append(f"X-Release {release!r}, not a release")
    elif body != expected:
        problems.append(f"a {len(body)}-byte body, not {release}'s {len(expected)}-byte file")
    if not headers.get("Content-Type", "").startswith("application/json"):
        problems.append(f"Content-Type {headers.get('Content-Type')!r}")
    if target.is_front and headers.get("X-Served-By") != release:
        problems.append(f"X-Served-By {headers.get('X-Served-By')!r} for {release!r}")
    if target.variant is not None and bool(target.rules) != ("Deprecation" in headers):
        problems.append("no Deprecation header" if target.rules else "a Deprecation header")
    if (target.variant in FIELD_VARIANTS) != (headers.get("X-Fields-Pruned") == "yes"):
        problems.append(f"X-Fields-Pruned {headers.get('X-Fields-Pruned')!r}")
    if (target.variant in ETAG_VARIANTS) != ("ETag" in headers):
        problems.append("an ETag" if "ETag" in headers else "no ETag")
    if problems:
        raise StartError(f"{target.name}: GET {path} answered with {', '.join(problems)}")
