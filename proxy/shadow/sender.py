"""Sending the shadow copies, within their limits, and comparing what comes back.

``Shadower.shadow`` is called when the client's exchange is over (its whole answer sent): the
client never waits for a copy. It sends the request, as forwarded, to ``shadow.to``; for
``noise_percent`` of them also to the stable release a second time. Once every copy of one
request has its answer (or has failed), the answers are compared (``proxy.core.compat``) and
recorded in the ``DiffBook``: noise first, so that a difference the stable release shows
against itself is not counted as the candidate's.

Limits: at most ``shadow.max_in_flight`` copies wait for an answer (one more is dropped, not
queued), each for at most ``shadow.timeout`` (then cut off); every copy not compared is counted
in ``switchback_shadow_dropped_total{reason}``. The timeouts are checked by one sweep every
``SWEEP_SECONDS`` while copies wait (no timer per copy), as the listener checks its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from proxy.core.compat import Answer, compare, redact, route_label
from proxy.core.jsonpaths import parse_path
from proxy.core.rules import Rule, RuleSet
from proxy.core.shadowbook import DiffBook, Example
from proxy.core.shadowreport import build_report
from proxy.pipeline import Exchange, first_header
from proxy.schema import Config, ShadowConfig
from proxy.shadow.metrics import ShadowMetrics

log = logging.getLogger("switchback.shadow")

SWEEP_SECONDS = 0.1
Fields = list[tuple[bytes, bytes]]


class Received(Protocol):
    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> Fields: ...
    @property
    def body(self) -> bytes: ...


Done = Callable[[Received | None, str], None]


class Sender(Protocol):
    """How a copy reaches a release (``proxy.http.whole.WholeSender``)."""

    def send(
        self, release: str, ex: Exchange, body: bytes, *, max_body: int, done: Done
    ) -> Callable[[], None] | None: ...


def answer_of(status: int, headers: Fields, body: bytes) -> Answer:
    return Answer(
        status, first_header(headers, b"content-type"),
        first_header(headers, b"content-encoding"), body,
    )  # fmt: skip


class _Pending:
    """The copies of one request: the stable answer, and what came back so far."""

    __slots__ = ("ex", "stable", "waiting", "candidate", "noise")

    def __init__(self, ex: Exchange, stable: Answer) -> None:
        self.ex = ex
        self.stable = stable
        self.waiting = 0
        self.candidate: Answer | None = None
        self.noise: Answer | None = None


class Shadower:
    """Shadow traffic for one process; ``reconfigure`` keeps the book and the copies in flight."""

    def __init__(
        self,
        config: Config,
        sender: Sender,
        metrics: ShadowMetrics,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float],
    ) -> None:
        self.sender = sender
        self.metrics = metrics
        self.loop = loop
        self.clock = clock
        self.in_flight = 0
        self.book = DiffBook()
        self._waiting: dict[int, tuple[float, Callable[[], None]]] = {}  # deadline, cancel
        self._next = 0
        self._sweeping: asyncio.TimerHandle | None = None
        self.reconfigure(config)

    def reconfigure(self, config: Config) -> None:
        shadow = config.shadow
        self.config = config
        self.ignore = tuple(parse_path(p) for p in shadow.ignore) if shadow else ()
        rules = self.route_rules = RuleSet.compile(config.deprecations).rules
        self.field_rules: tuple[Rule, ...] = tuple(r for r in rules if r.kind == "field")
        self.book.max_routes = shadow.max_routes if shadow else self.book.max_routes

    def report(self, usage: Mapping[str, list[str]], limit: int | None) -> dict[str, Any]:
        """The diff report (``proxy.core.shadowreport``); ``usage``: who used which deprecated
        response field in the deprecation report's window."""
        shadow = self.config.shadow
        window = shadow.window if shadow is not None else 0.0
        counts = {
            "enabled": shadow is not None,
            "to": shadow.to if shadow is not None else None,
            "in_flight": self.in_flight,
        }
        return build_report(self.book, self.field_rules, usage, self.clock(), window, limit, counts)

    def shadow(self, ex: Exchange, stable: Answer, body: bytes, noise: bool) -> None:
        shadow = self.config.shadow
        if shadow is None:
            return
        pending = _Pending(ex, stable)
        pending.waiting = 1  # held while sending: a copy that fails at once compares nothing
        self._send(shadow, pending, shadow.to, "shadow", body)
        if noise:
            self._send(shadow, pending, ex.release, "noise", body)
        self._settle(pending)

    def _settle(self, pending: _Pending) -> None:
        pending.waiting -= 1
        if not pending.waiting:
            self._compare(pending)

    def _send(
        self, shadow: ShadowConfig, pending: _Pending, release: str, role: str, body: bytes
    ) -> None:
        if self.in_flight >= shadow.max_in_flight:
            self.metrics.dropped.labels("max_in_flight").inc()
            return
        ex = pending.ex
        key = self._next
        self._next += 1

        def done(got: Received | None, why: str) -> None:
            self._waiting.pop(key, None)
            self.in_flight -= 1
            self.metrics.in_flight.set(self.in_flight)
            if got is None:
                self.metrics.dropped.labels("timeout" if why == "cancelled" else why).inc()
            else:
                answer = answer_of(got.status, got.headers, got.body)
                if role == "shadow":
                    pending.candidate = answer
                else:
                    pending.noise = answer
            self._settle(pending)

        cap = self.config.telemetry.max_body_bytes
        self.in_flight += 1  # before sending: ``done`` may come at once
        pending.waiting += 1
        cancel = self.sender.send(release, ex, body, max_body=cap, done=done)
        if cancel is None:
            self.in_flight -= 1
            pending.waiting -= 1
            self.metrics.dropped.labels("busy").inc()
            return
        self.metrics.in_flight.set(self.in_flight)
        self.metrics.sent.labels(role).inc()
        self._waiting[key] = (self.loop.time() + shadow.timeout, cancel)
        self._arm()

    def _arm(self) -> None:
        if self._sweeping is None and self._waiting:
            self._sweeping = self.loop.call_later(SWEEP_SECONDS, self._sweep)

    def _sweep(self) -> None:
        """Cut off the copies past their deadline (their ``done`` counts them as timeouts)."""
        self._sweeping = None
        now = self.loop.time()
        try:
            for key, (deadline, cancel) in list(self._waiting.items()):
                if deadline <= now:
                    del self._waiting[key]
                    cancel()
        finally:
            self._arm()  # a failure in one copy must not leave the others without a deadline

    def _compare(self, pending: _Pending) -> None:
        try:
            self._record(pending)
        except Exception:  # a bug here must never reach the data plane's callbacks
            log.exception("comparing a shadow answer failed")

    def _record(self, pending: _Pending) -> None:
        shadow = self.config.shadow
        if shadow is None:
            return
        ex, book = pending.ex, self.book
        cap = self.config.telemetry.max_body_bytes
        values = shadow.compare_values
        noise = candidate = None
        if pending.noise is not None:
            noise = compare(pending.stable, pending.noise, self.ignore, values, cap)
        if pending.candidate is not None:
            candidate = compare(pending.stable, pending.candidate, self.ignore, values, cap)
            self.metrics.compared.inc()
        route = book.route(route_label(ex.method, ex.path, self.route_rules))
        example = self._example(ex) if noise or candidate else None
        now = self.clock()
        if noise is not None:
            book.record_noise(route, noise, example, now)
            for d in noise:
                self.metrics.noise.inc((route, d.kind))
        if candidate is not None:
            for d in book.record(route, candidate, example, now):
                self.metrics.diffs.inc((route, d.kind))

    def _example(self, ex: Exchange) -> Example:
        headers = redact(ex.headers, self.config.clients.api_key_header)
        return Example(ex.method, ex.target.decode("latin-1"), tuple(headers), ex.client_id)
