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

from proxy.core.traffic_state import TrafficState

__all__ = [
    "BUCKETS",
    "TrafficState",
    "bucket_of",
    "candidate_buckets",
    "failover_target",
    "other_release",
    "route",
    "weight_to_buckets",
]

BUCKETS = 10_000


@functools.lru_cache(maxsize=65_536)
def bucket_of(client_id: str) -> int:
    """The client's bucket in 0..9999; stable across processes, hosts and Python versions
    (memoized: it runs on every request, for a bounded set of recent clients)."""
    digest = hashlib.blake2b(client_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def weight_to_buckets(weight: float) -> int:
    """Percent (0-100, two decimals) to a number of buckets (0-10000)."""
    return max(0, min(BUCKETS, round(weight * 100)))


def candidate_buckets(state: TrafficState) -> int:
    """The buckets the candidate owns: those below this number."""
    return weight_to_buckets(state.weights.get(state.candidate, 0.0))


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
    if bucket_of(client_id) < candidate_buckets(state):
        return state.candidate
    return state.stable


def failover_target(state: TrafficState, release: str) -> str | None:
    """Where a request goes when ``release`` refused the connection, or None for a 502."""
    other = other_release(state, release)
    return other if state.carries_traffic(other) else None
