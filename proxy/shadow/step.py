"""The shadow step: picks the requests to copy, keeps what a copy needs, hands it over at the end.

    request        a request the stable release serves, with a method ``shadow.methods`` names,
                   is picked with probability ``shadow.percent`` (and, of those, a second copy
                   to the stable release with ``shadow.noise_percent``); its body is wanted
    request_body   the body as received (a copy: the stream to the release is never delayed)
    response_head  the stable answer is held until whole (up to ``telemetry.max_body_bytes``)
    response_body  the stable answer's bytes, before any step rewrites them (this step comes
                   first among those that look at bodies)
    done           the client has its whole answer: ``Shadower.shadow`` sends the copies

A request the release failed, that failed over, or whose body was too large to keep is not
copied; it is counted as dropped (``not_served``, ``too_large``). Methods that are not safe
are copied only when ``shadow.methods`` names them (the config checker says so).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from proxy.core.compat import Answer
from proxy.pipeline import Exchange, Slot, Step
from proxy.shadow.sender import Shadower, answer_of


class _Held:
    __slots__ = ("noise", "request_body", "stable")

    def __init__(self, noise: bool) -> None:
        self.noise = noise
        self.request_body: bytes | None = None
        self.stable: Answer | None = None


HELD = Slot[_Held]("shadow")


class ShadowStep(Step):
    name = "shadow"

    def __init__(
        self,
        shadower: Shadower,
        stable: Callable[[], str],
        chance: Callable[[], float] = random.random,
    ) -> None:
        self.shadower = shadower
        self.stable = stable
        self.chance = chance  # in [0, 1)
        shadow = shadower.config.shadow
        if shadow is None:
            raise ValueError("ShadowStep needs a shadow config")
        self.to = shadow.to
        self.methods = frozenset(shadow.methods)
        self.share = shadow.percent / 100.0
        self.noise_share = shadow.noise_percent / 100.0

    def request(self, ex: Exchange) -> None:
        if ex.method not in self.methods or ex.release == self.to or ex.release != self.stable():
            return
        if self.chance() >= self.share:
            return
        ex.put(HELD, _Held(self.chance() < self.noise_share))
        ex.want_request_body = True

    def request_body(self, ex: Exchange, body: bytes) -> None:
        held = ex.get(HELD)
        if held is not None:
            held.request_body = body

    def response_head(self, ex: Exchange) -> None:
        if ex.get(HELD) is not None:
            ex.want_response_body = True

    def response_body(self, ex: Exchange, body: bytes) -> None:
        held = ex.get(HELD)
        if held is not None:
            held.stable = answer_of(ex.status, ex.response_headers, body)

    def done(self, ex: Exchange) -> None:
        held = ex.get(HELD)
        if held is None:
            return
        dropped = self.shadower.metrics.dropped
        if ex.request_skipped or ex.response_skipped:
            dropped.labels("too_large").inc()
        elif (
            ex.outcome != "ok"
            or ex.failover_from is not None
            or held.stable is None
            or held.request_body is None
        ):
            dropped.labels("not_served").inc()
        else:
            self.shadower.shadow(ex, held.stable, held.request_body, held.noise)
