"""The release-traffic steps of the pipeline: who is the client, which release, what happened.

Each is small and knows nothing of the others; ``proxy.runtime.build_pipeline`` orders them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client.metrics import Counter, Histogram

from proxy.clients import ClientIdentifier
from proxy.metrics import Metrics
from proxy.pipeline import Exchange, Step
from proxy.routing import TrafficState, route
from proxy.window import Windows


class IdentifyClient(Step):
    """Sets ``client_id`` from the configured header, a hashed API key, or the peer address."""

    name = "identify"

    def __init__(self, identifier: ClientIdentifier) -> None:
        self.identify = identifier.identify

    def request(self, ex: Exchange) -> None:
        ex.client_id = self.identify(ex.headers, ex.peer)


class ChooseRelease(Step):
    """Sets ``release``: override header, then pins, then the sticky weighted choice."""

    name = "route"

    def __init__(self, traffic: Callable[[], TrafficState]) -> None:
        self.traffic = traffic

    def request(self, ex: Exchange) -> None:
        state = self.traffic()
        override = None
        header = state.override_header
        if header is not None:
            raw = ex.header(header.encode("latin-1"))
            override = raw.decode("latin-1") if raw is not None else None
        ex.release = route(ex.client_id, override, state)


class RecordExchange(Step):
    """Counts every finished exchange in Prometheus and in the rollout's sliding windows."""

    name = "record"

    def __init__(self, metrics: Metrics, windows: Windows, loop: asyncio.AbstractEventLoop) -> None:
        self.metrics = metrics
        self.windows = windows
        self.clock = loop.time
        self._requests: dict[tuple[str, int], Counter] = {}
        self._durations: dict[str, Histogram] = {}

    def done(self, ex: Exchange) -> None:
        now = self.clock()
        elapsed = now - ex.started
        release = ex.release
        status = ex.status
        key = (release, status)
        counter = self._requests.get(key)
        if counter is None:
            counter = self._requests[key] = self.metrics.requests.labels(release, str(status))
        counter.inc()
        hist = self._durations.get(release)
        if hist is None:
            hist = self._durations[release] = self.metrics.duration.labels(release)
        hist.observe(elapsed)
        if ex.outcome != "client_closed":
            self.windows.record(release, status, elapsed, now)
