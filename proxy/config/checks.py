"""What a typed ``Config`` must also satisfy, beyond what its types say.

``check(cfg)`` returns every problem found, one line each, as ``key.path: value problem``;
``proxy.config.load`` prefixes the file name and raises them together. The checks only read the
config, so they can run on any converted ``Config`` (a reload, a test) and never raise for a
bad value. NaN and infinities fail every numeric check: each one tests finiteness first.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from proxy.config.coordination_checks import coordination_problems
from proxy.config.deprecation_checks import deprecation_problems
from proxy.config.ledger_checks import ledger_problems
from proxy.config.log_checks import logging_problems
from proxy.config.secrets import HIDDEN, secret_bytes, secret_problem
from proxy.config.shadow_checks import shadow_problems
from proxy.config.values import dotted, show
from proxy.schema import AdminConfig, Config

RELEASE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 section 5.6.2: token
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_PORT = re.compile(r"[0-9]{1,5}")
# Keys whose values no message shows (they are replaced by HIDDEN).
SECRETS = frozenset({"admin.token", "admin.read_token", "clients.api_key_secret"})
INT64 = 2**63  # integers are kept in SQLite and written as JSON: both stop at 64 bits


def split_host_port(text: str, any_port: bool = False) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError says what is wrong.

    ``any_port``: port 0 is allowed (a listener then takes any free port, as tests do)."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError("is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("has an invalid IPv6 address") from None
    elif ":" in host:
        raise ValueError("has an IPv6 address without brackets (write [::1]:8080)")
    elif not _HOSTNAME.fullmatch(host):
        raise ValueError("has an invalid host")
    elif host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("has an invalid IPv4 address") from None
    lowest = 0 if any_port else 1
    if not _PORT.fullmatch(port) or not lowest <= int(port) <= 65535:
        raise ValueError(f"has an invalid port (expected {lowest}-65535)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_set(token: str | None) -> bool:
    """A token counts as set when it has more than whitespace."""
    return token is not None and bool(token.strip())


def admin_reads_need_token(admin: AdminConfig) -> bool:
    """Whether GET /status, /metrics and /deprecations need a bearer token: when the admin
    listener is reachable beyond loopback, or a read token is set."""
    if is_set(admin.read_token):
        return True
    try:
        host, _ = split_host_port(admin.listen, any_port=True)
    except ValueError:
        return True  # refused by the checks; never open by mistake
    return not is_loopback(host)


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _two_decimals(v: float) -> bool:
    return abs(v * 100 - round(v * 100)) < 1e-6


def percent_problem(v: float) -> str | None:
    if not (_finite(v) and 0 <= v <= 100):
        return "is not a percentage (0-100)"
    if not _two_decimals(v):
        return "has more than two decimals"
    return None


# (key path, acceptable?, what is wrong otherwise)
_NUMBERS: tuple[tuple[str, Callable[[float], bool], str], ...] = (
    ("upstream.connect_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("upstream.response_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("upstream.read_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("upstream.pool_size", lambda v: v >= 0, "is negative"),
    ("server.drain_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("server.keepalive_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("server.head_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("server.body_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("server.send_timeout", lambda v: _finite(v) and v > 0, "is not a positive timeout"),
    ("limits.max_head_bytes", lambda v: v >= 1024, "is below 1024 bytes"),
    ("limits.max_headers", lambda v: v >= 1, "is less than 1"),
    (
        "limits.max_body_bytes",
        lambda v: v is None or v >= 0,
        "is negative (null turns the limit off)",
    ),
    ("limits.max_target_bytes", lambda v: v >= 16, "is below 16 bytes"),
    ("limits.max_response_head_bytes", lambda v: v >= 1024, "is below 1024 bytes"),
    ("limits.max_connections", lambda v: v >= 1, "is less than 1"),
    ("limits.max_in_flight", lambda v: v >= 1, "is less than 1"),
    ("limits.max_loop_lag", lambda v: _finite(v) and v > 0, "is not a positive duration"),
    ("limits.retry_after", lambda v: v >= 0, "is negative"),
    ("clients.max_tracked", lambda v: v >= 0, "is negative"),
    ("rollout.step_seconds", lambda v: _finite(v) and v > 0, "is not a positive duration"),
    ("rollout.min_requests", lambda v: v >= 1, "is less than 1"),
    ("rollout.max_error_rate", lambda v: _finite(v) and 0 <= v <= 1, "is not a rate (0-1)"),
    ("rollout.max_p99_ms", lambda v: _finite(v) and v >= 0, "is not a duration >= 0"),
    ("rollout.error_rate_factor", lambda v: _finite(v) and v >= 1, "is not a factor >= 1"),
    ("rollout.p99_factor", lambda v: _finite(v) and v >= 1, "is not a factor >= 1"),
    ("rollout.websocket_grace", lambda v: _finite(v) and v >= 0, "is not a duration >= 0"),
    ("telemetry.max_body_bytes", lambda v: v > 0, "is not positive"),
    ("telemetry.report_days", lambda v: v > 0, "is not positive"),
    ("telemetry.retention_days", lambda v: v > 0, "is not positive"),
    ("telemetry.flush_seconds", lambda v: _finite(v) and v > 0, "is not positive"),
    ("telemetry.etag_cache", lambda v: v >= 0, "is negative (0 turns the cache off)"),
    ("journal.max_body_bytes", lambda v: v >= 0, "is negative"),
    ("journal.retention_days", lambda v: v > 0, "is not positive"),
    ("journal.max_entries", lambda v: v >= 1, "is less than 1"),
    ("journal.queue_size", lambda v: v >= 1, "is less than 1"),
    ("journal.flush_seconds", lambda v: _finite(v) and 0 < v <= 1, "is not a duration in (0, 1]"),
)


class _Problems(list[str]):
    def add(self, path: str, value: Any, problem: str) -> None:
        self.append(f"{path}: {show(value)} {problem}")


def check(cfg: Config) -> list[str]:
    """Every problem in ``cfg``, one line each; empty when the config is valid."""
    out = _Problems()
    for path, value in (("listen", cfg.listen), ("admin.listen", cfg.admin.listen)):
        try:
            split_host_port(value, any_port=True)
        except ValueError as exc:
            out.add(path, value, f"{exc} (expected host:port, e.g. 127.0.0.1:8080)")
    _check_admin_token(out, cfg)
    _check_secrets(out, cfg)
    _check_releases(out, cfg)
    _check_traffic(out, cfg)
    for path in ("clients.id_header", "clients.api_key_header"):
        _check_header(out, path, _get(cfg, path))
    for path, ok, problem in _NUMBERS:
        value = _get(cfg, path)
        if isinstance(value, int) and not -INT64 <= value < INT64:
            out.add(path, value, "is out of range (a 64-bit integer)")
        elif not ok(value):
            out.add(path, value, problem)
    _check_steps(out, cfg.rollout.steps)
    if cfg.telemetry.retention_days < cfg.telemetry.report_days:
        out.add(
            "telemetry.retention_days",
            cfg.telemetry.retention_days,
            f"is shorter than telemetry.report_days ({show(cfg.telemetry.report_days)})",
        )
    for path, value, problem in deprecation_problems(cfg.deprecations):
        out.add(path, value, problem)
    for path, value, problem in (
        *shadow_problems(cfg),
        *logging_problems(cfg),
        *ledger_problems(cfg),
        *coordination_problems(cfg),
    ):
        out.add(path, value, problem)
    _check_fields(out, cfg)
    return out


FIELDS_MODES = ("off", "prune", "declare")


def _check_fields(out: _Problems, cfg: Config) -> None:
    fields = cfg.fields
    if fields.mode not in FIELDS_MODES:
        out.add("fields.mode", fields.mode, f"is not one of {', '.join(FIELDS_MODES)}")
    for path in ("fields.header", "fields.status_header"):
        _check_header(out, path, _get(cfg, path))
    param = fields.query_param
    if param is not None and (not param or any(c in param for c in "&=#? ")):
        out.add("fields.query_param", param, "is not a query parameter name")
    cap = fields.max_body_bytes
    if cap is not None and not 0 < cap <= cfg.telemetry.max_body_bytes:
        out.add(
            "fields.max_body_bytes",
            cap,
            f"is not between 1 and telemetry.max_body_bytes ({show(cfg.telemetry.max_body_bytes)})"
            ", the most a response is held",
        )


def _get(cfg: Config, path: str) -> Any:
    value: Any = cfg
    for name in path.split("."):
        value = getattr(value, name)
    return value


def _check_admin_token(out: _Problems, cfg: Config) -> None:
    token = cfg.admin.token
    if token is not None and token.strip():
        return
    try:
        host, _ = split_host_port(cfg.admin.listen, any_port=True)
    except ValueError:
        return  # reported above
    if not is_loopback(host):
        out.add(
            "admin.token",
            token,
            f"is not allowed while admin.listen ({cfg.admin.listen}) "
            "is not loopback: the admin API must never be open beyond loopback without "
            "a token (set admin.token, or listen on 127.0.0.1)",
        )


def _check_secrets(out: _Problems, cfg: Config) -> None:
    # Messages name these keys but never show their values.
    admin, secret = cfg.admin, cfg.clients.api_key_secret
    if is_set(admin.read_token) and admin.read_token == admin.token:
        same = "is admin.token: a read token must not allow changes"
        out.append(f"admin.read_token: {HIDDEN} {same}")
    problem = secret_problem(secret_bytes(secret)) if secret is not None else None
    if problem is not None:
        out.append(f"clients.api_key_secret: {problem}")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not ``http://host:port`` (port optional: 80), or None."""
    if "://" not in url:
        return "has no scheme (expected http://host:port)"
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL", characters that NFKC turns into "/?#@:"
        return f"is not a URL: {exc} (expected http://host:port)"
    scheme = parts.scheme.lower()
    if scheme == "https":
        return "uses https, which the upstream client does not support yet (use http://)"
    if scheme != "http":
        return f"has scheme {scheme!r} (expected http://host:port)"
    if "@" in parts.netloc:
        return "has credentials, which are not supported (expected http://host:port)"
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in url or "#" in url:
        return "has a path, query or fragment (expected only http://host:port)"
    netloc = parts.netloc
    if netloc.endswith("]") or ":" not in netloc:
        netloc += ":80"  # no port: HTTP's default
    try:
        split_host_port(netloc)
    except ValueError as exc:
        return f"{exc} (expected http://host:port)"
    return None


def _check_releases(out: _Problems, cfg: Config) -> None:
    if len(cfg.releases) != 2:
        out.add("releases", sorted(cfg.releases), "is not exactly two releases (e.g. blue, green)")
    for name, release in cfg.releases.items():
        if not RELEASE_NAME.fullmatch(name):
            out.add(dotted("releases", name), name, "is not a release name ([a-z][a-z0-9_-]*)")
        problem = url_problem(release.url)
        if problem is not None:
            out.add(dotted("releases", name, "url"), release.url, problem)


def _check_traffic(out: _Problems, cfg: Config) -> None:
    traffic, releases = cfg.traffic, cfg.releases
    known = f"(releases: {', '.join(releases)})"
    if traffic.stable not in releases:
        out.add("traffic.stable", traffic.stable, f"is not a release {known}")
    clean = True
    for name, weight in traffic.weights.items():
        problem = percent_problem(weight) if name in releases else f"is not a release {known}"
        if problem is not None:
            out.add(dotted("traffic", "weights", name), weight, problem)
            clean = False
    missing = [name for name in releases if name not in traffic.weights]
    if missing:
        out.add("traffic.weights", traffic.weights, f"has no weight for {', '.join(missing)}")
    elif clean and abs(sum(traffic.weights.values()) - 100) > 1e-6:
        out.add(
            "traffic.weights",
            traffic.weights,
            f"sum to {show(round(sum(traffic.weights.values()), 6))}, not 100",
        )
    pinned: dict[str, str] = {}
    for name, clients in traffic.pins.items():
        if name not in releases:
            out.add(dotted("traffic", "pins", name), name, f"is not a release {known}")
        for client in clients:
            if client in pinned:
                out.add(
                    dotted("traffic", "pins", name),
                    client,
                    f"is pinned twice (also to {pinned[client]})",
                )
            pinned.setdefault(client, name)
    _check_header(out, "traffic.override_header", traffic.override_header)


def _check_header(out: _Problems, path: str, name: str | None) -> None:
    if name is not None and not HEADER_NAME.fullmatch(name):
        out.add(path, name, "is not a valid header name (RFC 9110 token)")


def _check_steps(out: _Problems, steps: list[float]) -> None:
    if not steps:
        out.add("rollout.steps", steps, "is empty (the last step must be 100)")
        return
    for i, step in enumerate(steps):
        if not (_finite(step) and 0 < step <= 100):
            out.add(f"rollout.steps[{i}]", step, "is not a percentage in (0, 100]")
        elif not _two_decimals(step):
            out.add(f"rollout.steps[{i}]", step, "has more than two decimals")
        elif i and not step > steps[i - 1]:
            out.add(
                f"rollout.steps[{i}]", step, f"is not above the step before ({show(steps[i - 1])})"
            )
    if steps[-1] != 100:
        out.add("rollout.steps", steps, "does not end at 100")
