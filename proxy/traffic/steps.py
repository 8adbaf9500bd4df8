"""The release-traffic steps of the pipeline: who is the client, which release, what happened.

Each is small and knows nothing of the others; ``proxy.app.runtime.build_pipeline`` orders them.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from proxy.core.routing import TrafficState, route
from proxy.core.window import Windows
from proxy.pipeline import Exchange, Step
from proxy.traffic.clients import ClientIdentifier
from proxy.traffic.metrics import TrafficMetrics


class IdentifyClient(Step):
    """Sets ``client_id`` from the configured header, a hashed API key, or the peer address."""

    name = "identify"

    def __init__(self, identifier: ClientIdentifier) -> None:
        self.identify = identifier.identify

    def request(self, ex: Exchange) -> None:
        ex.client_id = self.identify(ex.headers, ex.peer)


class Split(Protocol):
    """Where the traffic split in force is read (the traffic control, whose ``traffic`` is
    replaced whole on every change)."""

    traffic: TrafficState


class ChooseRelease(Step):
    """Sets ``release``: override header, then pins, then the sticky weighted choice."""

    name = "route"

    def __init__(self, split: Split) -> None:
        self.split = split

    def request(self, ex: Exchange) -> None:
        state = self.split.traffic
        header = state.override_header
        if header is None:
            ex.release = route(ex.client_id, None, state)
            return
        raw = ex.header(header.encode("latin-1"))
        ex.release = route(ex.client_id, raw.decode("latin-1") if raw is not None else None, state)


_NOT_THE_RELEASES = frozenset({"client_closed", "rejected", "answered"})


class RecordExchange(Step):
    """Counts every finished exchange in Prometheus and in the rollout's sliding windows."""

    name = "record"

    def __init__(
        self, metrics: TrafficMetrics, windows: Windows, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.requests = metrics.requests.inc
        self.durations = metrics.duration.observe
        self.windows = windows.record
        self.clock = loop.time

    def done(self, ex: Exchange) -> None:
        now = self.clock()
        elapsed = now - ex.started
        release = ex.release
        status = ex.status
        self.requests((release, status))
        self.durations((release,), elapsed)
        # The rollout judges the releases' own answers: not a client that went away, nor a
        # request Switchback refused itself (a limit, a timeout, overload) or a step answered
        # (a sunset's 410, a malformed field list's 400).
        if ex.outcome not in _NOT_THE_RELEASES:
            self.windows(release, status, elapsed, now)
