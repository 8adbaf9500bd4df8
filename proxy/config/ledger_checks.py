"""Checks of the fleet ledger's keys: ``telemetry.ledger``, ``telemetry.replica``,
``telemetry.spool_max_rows``. A URL is shown without its password."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from proxy.core.dburl import redacted, url_problem
from proxy.schema import Config

MAX_REPLICA = 200


def ledger_problems(cfg: Config) -> Iterator[tuple[str, Any, str]]:
    """(key path, value as shown, problem) for each problem."""
    t = cfg.telemetry
    if t.ledger is not None:
        problem = url_problem(t.ledger)
        if problem is not None:
            yield "telemetry.ledger", redacted(t.ledger), problem
    if t.replica is not None and not (
        0 < len(t.replica) <= MAX_REPLICA and t.replica.isprintable()
    ):
        yield "telemetry.replica", t.replica, f"is not 1-{MAX_REPLICA} printable characters"
    if not 1_000 <= t.spool_max_rows < 2**63:
        yield "telemetry.spool_max_rows", t.spool_max_rows, "is below 1000"
