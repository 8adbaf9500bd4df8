"""The journal's pipeline step: the candidate's writes, copied onto the journal's queue.

``request`` decides (``entry.journals``: an unsafe method routed to the candidate) and asks
for a copy of the body (``want_request_body``: the data plane never delays the stream for it);
``request_body`` keeps the copy in a slot; ``done`` makes the entry (with the status) and
queues it (``Journal.append``: memory only). A request that failed over to the stable release
(its connection to the candidate could not be opened) is not journaled: the candidate never
saw it. Requests of the stable release, and reads, cost one set look-up and two compares.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from proxy.core.routing import TrafficState
from proxy.journal.entry import NOT_SERVED, SAFE_METHODS, journals, make_entry
from proxy.journal.journal import Journal
from proxy.pipeline import Exchange, Slot, Step
from proxy.schema import JournalConfig

BODY = Slot[bytes]("journal.body")
JOURNALED = Slot[bool]("journal.journaled")


class JournalStep(Step):
    name = "journal"

    def __init__(
        self,
        journal: Journal,
        traffic: Callable[[], TrafficState],
        config: JournalConfig,
        secret: frozenset[bytes],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.traffic = traffic
        self.max_body = config.max_body_bytes
        self.keep_credentials = config.keep_credentials
        self.secret = secret
        self.clock = clock

    def request(self, ex: Exchange) -> None:
        if ex.method in SAFE_METHODS:  # most requests: no look at the traffic state
            return
        state = self.traffic()
        if journals(ex.method, ex.release, state.candidate, state.stable):
            ex.want_request_body = True
            ex.put(JOURNALED, True)

    def request_body(self, ex: Exchange, body: bytes) -> None:
        if ex.get(JOURNALED):
            ex.put(BODY, body)

    def done(self, ex: Exchange) -> None:
        slots = ex.slots  # most requests have none (a read, or the stable release's): no call
        if (
            not slots
            or not slots.get(JOURNALED)
            or ex.failover_from is not None
            or ex.outcome in NOT_SERVED
        ):
            return
        entry = make_entry(
            ex, ex.get(BODY), self.clock(), self.max_body, self.secret, self.keep_credentials
        )
        self.journal.append(entry)
