"""Deprecation telemetry: the compiled rules, the bounded client labels, the ledger, and the
report the admin API answers with.

The pipeline step that uses them is ``proxy.deprecation.step.DeprecationStep``; counting goes
through ``Telemetry.count`` (metrics, and the ledger's in-memory batch) when an exchange is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.metrics import Counter

from proxy.core.enforcement_report import enforcement_json
from proxy.core.fleetreport import fleet_json, hold_undelivered
from proxy.core.labels import ClientLabels
from proxy.core.report import ElementInfo, UsageRow, build_report, report_to_json
from proxy.core.rules import Rule, RuleSet
from proxy.deprecation.ledger import Ledger, LedgerHooks
from proxy.deprecation.metrics import DeprecationMetrics
from proxy.errors import LedgerError
from proxy.schema import Config

if TYPE_CHECKING:  # psycopg is loaded only for a fleet ledger (about 12 MB)
    from proxy.deprecation.ledger_pg import Fleet, PgLedger

log = logging.getLogger("switchback.telemetry")

LEDGER_FILE = "ledger.sqlite3"
FLEET_REFRESH = 30.0  # seconds between two fleet reads kept for ``Telemetry.report``
Spawn = Callable[[Coroutine[Any, Any, None]], Any]
# (release, method, target, strong ETag, Content-Encoding, the rules applied)
EtagKey = tuple[str, str, bytes, bytes, bytes | None, tuple[Rule, ...]]


class Telemetry:
    def __init__(self, config: Config, metrics: DeprecationMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.rules = RuleSet.compile(config.deprecations)
        self.labels = ClientLabels(config.clients.known, config.clients.max_tracked)
        self.ledger: Ledger | PgLedger | None = None
        self._fleet: Fleet | None = None  # the fleet ledger's last read (see ``report``)
        self._skips: dict[str, Counter] = {}
        # What was found in a representation with a strong ETag (bounded; 0 disables).
        self.etag_limit = config.telemetry.etag_cache
        self.by_etag: dict[EtagKey, tuple[Rule, ...]] = {}
        self._publish_dates()

    def _publish_dates(self) -> None:
        self.metrics.sunset.clear()
        self.metrics.deprecated_since.clear()
        for dep in self.config.deprecations:
            self.metrics.deprecated_since.labels(dep.id).set(dep.deprecated.timestamp())
            if dep.sunset is not None:
                self.metrics.sunset.labels(dep.id).set(dep.sunset.timestamp())

    async def start(self, spawn: Spawn) -> None:
        """Opens the ledger; a file that cannot be opened or is corrupt never stops start-up
        (see ``proxy.deprecation.ledger``: counted, logged, set aside or retried)."""
        path = os.path.join(self.config.state_dir, LEDGER_FILE)
        m = self.metrics
        hooks = LedgerHooks(
            write_failed=m.ledger_write_failures.inc,
            reset=m.ledger_resets.inc,
            dropped=m.ledger_dropped.inc,
            spool_rows=m.spool_rows.set,
            spool_merged=m.spool_merged.inc,
        )
        t = self.config.telemetry
        if t.ledger is None:
            self.ledger = Ledger(path, t.retention_days, hooks=hooks)
        else:  # one database for the fleet; spooled locally while it is away
            from proxy.deprecation.ledger_pg import PgLedger

            replica = t.replica or socket.gethostname()
            try:
                self.ledger = PgLedger(t.ledger, replica, self.config.state_dir,
                                       t.retention_days, t.spool_max_rows, hooks)  # fmt: skip
            except (OSError, sqlite3.Error) as exc:
                raise LedgerError(f"the ledger spool in {self.config.state_dir} cannot be "
                                  f"opened: {exc}") from None  # fmt: skip
        self.ledger.register_elements((d.id for d in self.config.deprecations), time.time())
        spawn(self.ledger.run(self.config.telemetry.flush_seconds))
        if not isinstance(self.ledger, Ledger):
            spawn(self._refresh(FLEET_REFRESH))

    async def _refresh(self, interval: float) -> None:
        """Keeps the fleet read that ``report`` (the shadow report's field usage) answers from
        at most ``interval`` seconds old; a database out of reach keeps the last one."""
        while True:
            with contextlib.suppress(LedgerError):
                await self.report_async(None)
            await asyncio.sleep(interval)

    async def close(self) -> None:
        if self.ledger is not None:
            await self.ledger.close()

    def reconfigure(self, config: Config) -> None:
        old = self.config.clients
        self.config = config
        self.rules = RuleSet.compile(config.deprecations)
        self.etag_limit = config.telemetry.etag_cache
        self.by_etag = {}  # keyed by the old rules: none would match again
        new = config.clients
        if (new.known, new.max_tracked) != (old.known, old.max_tracked):
            # A client named in ``known`` gets its own label at once; the clients that had one
            # keep it (within the new bound), in the order they first got it.
            before = self.labels.labelled()
            self.labels = ClientLabels(new.known, new.max_tracked)
            for client in before:
                self.labels.label(client)
        self._publish_dates()
        if self.ledger is not None:
            self.ledger.register_elements((d.id for d in config.deprecations), time.time())

    # -- counting (called by the step when an exchange is done) --
    def count(self, rule: Rule, kind: str, client_id: str, now: float) -> None:
        self.count_all((rule,), kind, client_id, now)

    def count_all(self, rules: Sequence[Rule], kind: str, client_id: str, now: float) -> None:
        """One touch of each of ``rules`` (no repeats) by ``client_id``, whose label is looked
        up once for all of them."""
        label = self.labels.label(client_id)
        counted, last_seen = self.metrics.deprecated, self.metrics.deprecated_last_seen
        ledger = self.ledger
        for rule in rules:
            counted.inc((rule.id, kind, label))
            last_seen.set((rule.id, label), now)
            if ledger is not None:
                ledger.record(rule.id, kind, client_id, now)

    def remember(self, key: EtagKey, found: tuple[Rule, ...]) -> None:
        cache = self.by_etag
        if len(cache) >= self.etag_limit:
            del cache[next(iter(cache))]  # the oldest entry
        cache[key] = found

    def skipped(self, reason: str) -> None:
        counter = self._skips.get(reason)
        if counter is None:
            counter = self._skips[reason] = self.metrics.inspection_skipped.labels(reason)
        counter.inc()

    # -- the report --
    def report(self, days: int | None) -> dict[str, Any]:
        """The report from what this process holds: the SQLite ledger, or the fleet ledger's
        last read, at most ``FLEET_REFRESH`` seconds old (``report_async`` reads the database;
        the shadow report's field usage, which cannot wait, uses this)."""
        window = days if days is not None else self.config.telemetry.report_days
        now = time.time()
        elements = [ElementInfo.from_config(d) for d in self.config.deprecations]
        usage: list[UsageRow] = []
        observed: dict[str, float] = {}
        if isinstance(self.ledger, Ledger):
            usage = self.ledger.usage_since(now - window * 86400)
            observed = self.ledger.observed_in_window((e.id for e in elements), now, window)
        elif self._fleet is not None:
            usage, observed = self._fleet.usage, self._fleet.observed
        return self._report(elements, usage, observed, now, window)

    async def report_async(self, days: int | None) -> dict[str, Any]:
        """The report the admin API answers: for a fleet ledger, read from the database, the
        same from every replica (``proxy.core.fleetreport``)."""
        if self.ledger is None or isinstance(self.ledger, Ledger):
            return self.report(days)
        window = days if days is not None else self.config.telemetry.report_days
        now = time.time()
        elements = [ElementInfo.from_config(d) for d in self.config.deprecations]
        fleet = await self.ledger.fleet([e.id for e in elements], now, window)
        self._fleet = fleet
        out = self._report(elements, fleet.usage, fleet.observed, now, window)
        replica = self.ledger.replica
        out["fleet"] = fleet_json(replica, fleet.replicas, fleet.own_unsent, fleet.own_elements)
        return hold_undelivered(out, replica, fleet.replicas)

    def _report(
        self,
        elements: list[ElementInfo],
        usage: list[UsageRow],
        observed: dict[str, float],
        now: float,
        window: int,
    ) -> dict[str, Any]:
        out = report_to_json(build_report(elements, usage, observed, now, window), now, window)
        out["enforcement"] = enforcement_json(self.config.deprecations, now)
        return out
