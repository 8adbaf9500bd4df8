"""The journal as the runtime assembles and serves it: the step, the writer with its metrics,
and the admin API's listing and replay (``proxy.journal`` does the work)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

from proxy.core.routing import TrafficState
from proxy.errors import InvalidInput
from proxy.http.upstream import Upstream
from proxy.journal import store
from proxy.journal.entry import credential_names, parse_header
from proxy.journal.journal import Journal, JournalHooks
from proxy.journal.metrics import JournalMetrics
from proxy.journal.replay import replay
from proxy.journal.step import JournalStep
from proxy.journal.views import stored_to_json
from proxy.schema import Config


class Replay(NamedTuple):
    """``POST /journal/replay``'s options, as the admin API checked them."""

    to: str
    since: float | None
    dry_run: bool
    again: bool
    headers: list[str]  # "Name: value", added to (or replacing in) every entry


def make(metrics: JournalMetrics, config: Config) -> Journal:
    hooks = JournalHooks(
        written=lambda release, n: metrics.entries.labels(release).inc(n),
        dropped=metrics.dropped.inc,
        write_failed=metrics.write_failures.inc,
    )
    return Journal(os.path.join(config.state_dir, store.FILE), config.journal, hooks)


def step(
    config: Config, journal: Journal, traffic: Callable[[], TrafficState]
) -> JournalStep | None:
    if not config.journal.enabled:
        return None
    secret = credential_names(config.clients.api_key_header)
    return JournalStep(journal, traffic, config.journal, secret)


async def listing(
    journal: Journal, since: float | None, release: str | None, limit: int | None
) -> dict[str, Any]:
    rows = await journal.read(since=since, release=release, limit=limit)
    return {
        "file": journal.path,
        "count": len(rows),
        "entries": [stored_to_json(row) for row in rows],
        **journal.health(),
    }


async def replay_to(
    journal: Journal, upstream: Upstream, config: Config, options: Replay
) -> dict[str, Any]:
    if options.to not in config.releases:
        known = ", ".join(config.releases)
        raise InvalidInput(f"to: {options.to!r} is not a release (known: {known})")
    added = []
    for i, text in enumerate(options.headers):
        try:
            added.append(parse_header(text))
        except ValueError as exc:
            raise InvalidInput(f"headers[{i}]: {exc}") from None
    up = config.upstream
    return await replay(
        journal,
        upstream,
        options.to,
        since=options.since,
        dry_run=options.dry_run,
        again=options.again,
        headers=added,
        trust_forwarded=config.server.xff_trusted,
        timeout=up.response_timeout + up.read_timeout,
    )
