"""Building a replica's ``Coordinator`` from its config (the assembly calls this), and what
``GET /fleet`` says without one."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from proxy.schema import Config

if TYPE_CHECKING:
    from proxy.fleet.coordinator import Coordinator


def make_coordinator(rt: Any, cfg: Config, port: int) -> Coordinator | None:
    """The coordinator for ``cfg.coordination`` (None: standalone, nothing changes), on the
    runtime ``rt``'s traffic control, windows, metrics, loop and pools."""
    c = cfg.coordination
    if c is None:
        return None
    # Imported here: a standalone replica never loads the Redis client (about 6 MB).
    from proxy.fleet.coordinator import Coordinator

    replica = c.replica or f"{socket.gethostname()}:{port}"
    return Coordinator(
        c,
        replica,
        rt.control,
        rt.windows,
        rt.metrics.fleet,
        rt.loop.time,
        lambda: sum(pool.in_flight for pool in rt.pools.values()),
    )


def standalone_view(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "standalone": True,
        "message": "coordination is not configured: this replica keeps its own state",
        "weights": summary["weights"],
        "rollout": summary["rollout"]["state"],
    }
