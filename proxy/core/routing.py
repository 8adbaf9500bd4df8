"""Which release serves a request: a pure function over plain values.

Precedence, first match wins:
1. the override header, when enabled in config and naming a known release;
2. a client pinned to a release in config;
   (neither reaches a release a rollback took out of service: ``out_of_service``)
3. the sticky weighted choice: the client id hashes (BLAKE2b, the same in every process and
   replica, unlike Python's salted ``hash()``) into buckets 0..9999, and the candidate owns the
   lowest ``weight x 100`` buckets. Raising the candidate's weight therefore only moves clients
   from stable to candidate, and lowering it moves back the most recently moved ones first.

Failover to the other release when a connection cannot be opened is the listener's business;
``failover_target`` says whether that other release may take the request.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import msgspec

BUCKETS = 10_000


@functools.lru_cache(maxsize=65_536)
def bucket_of(client_id: str) -> int:
    """The client's bucket in 0..9999; stable across processes, hosts and Python versions
    (memoized: it runs on every request, for a bounded set of recent clients)."""
    digest = hashlib.blake2b(client_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@functools.lru_cache(maxsize=1024)
def weight_to_buckets(weight: float) -> int:
    """Percent (0-100, two decimals) to a number of buckets (0-10000); memoized, since every
    request asks it of the weight in force."""
    return max(0, min(BUCKETS, round(weight * 100)))


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

    @property
    def candidate_buckets(self) -> int:
        return weight_to_buckets(self.weights.get(self.candidate, 0.0))

    def with_weights(self, weights: Mapping[str, float]) -> TrafficState:
        return msgspec.structs.replace(self, weights=dict(weights))

    def carries_traffic(self, release: str) -> bool:
        return self.weights.get(release, 0.0) > 0.0


def other_release(state: TrafficState, release: str) -> str:
    return state.candidate if release == state.stable else state.stable


def route(client_id: str, override: str | None, state: TrafficState) -> str:
    """The release that serves this client. ``override`` is the override header's value."""
    if override is not None and state.override_header is not None:
        name = override.strip().lower()
        if name in state.weights and name != state.out_of_service:
            return name
    pinned = state.pins.get(client_id)
    if pinned is not None and pinned != state.out_of_service:
        return pinned
    if bucket_of(client_id) < state.candidate_buckets:
        return state.candidate
    return state.stable


def failover_target(state: TrafficState, release: str) -> str | None:
    """Where a request goes when ``release`` refused the connection, or None for a 502."""
    other = other_release(state, release)
    return other if state.carries_traffic(other) else None
