"""The traffic split in force, as one value (``proxy.core.routing`` decides with it).

A module of its own, not compiled: a compiled module loses a Struct's class options
(``proxy.http.native``), and ``proxy.core.routing``, which runs on every request, compiles.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec


class TrafficState(msgspec.Struct, frozen=True, kw_only=True):
    """The traffic split in force. Replaced whole on every change, never edited in place."""

    stable: str
    candidate: str
    weights: dict[str, float]  # release -> percent, sums to 100
    override_header: str | None = None  # lower-case header name, or None when disabled
    pins: dict[str, str] = msgspec.field(default_factory=dict)  # client id -> release
    # A release taken out of production by a rollback: no client reaches it, not even through
    # a pin or the override header, until weights, a rollout or a promotion bring it back.
    out_of_service: str | None = None

    def with_weights(self, weights: Mapping[str, float]) -> TrafficState:
        return msgspec.structs.replace(self, weights=dict(weights))

    def carries_traffic(self, release: str) -> bool:
        return self.weights.get(release, 0.0) > 0.0
