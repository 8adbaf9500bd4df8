"""What the process and the data plane take from the config: the listener's ``Settings`` and
the limit on open files."""

from __future__ import annotations

import logging
import resource

from proxy.http.context import Settings
from proxy.schema import Config

log = logging.getLogger("switchback")


def listener_settings(config: Config) -> Settings:
    server, limits = config.server, config.limits
    return Settings(
        response_timeout=config.upstream.response_timeout,
        read_timeout=config.upstream.read_timeout,
        inspect_cap=config.telemetry.max_body_bytes,
        served_by=config.traffic.served_by_header,
        trust_forwarded=server.xff_trusted,
        keepalive_timeout=server.keepalive_timeout,
        head_timeout=server.head_timeout,
        body_timeout=server.body_timeout,
        send_timeout=server.send_timeout,
        max_head_bytes=limits.max_head_bytes,
        max_headers=limits.max_headers,
        max_target_bytes=limits.max_target_bytes,
        max_body_bytes=limits.max_body_bytes,
        max_connections=limits.max_connections,
        max_in_flight=limits.max_in_flight,
        max_loop_lag=limits.max_loop_lag,
        retry_after=limits.retry_after,
    )


def raise_fd_limit(needed: int) -> None:
    """Raise the soft limit on open files towards the hard one (as nginx's
    worker_rlimit_nofile): every client connection may need a second one to its release."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        target = soft
    if target < needed:
        log.warning(
            "open files limited to %d: limits.max_connections needs about %d", target, needed
        )
