"""Micro-benchmark of client identification, which runs on every request.

    .venv/bin/python loadtest/identify.py [--number 200000]

Prints the best of five runs, in nanoseconds per call, for ``ClientIdentifier.identify`` on a
typical header list (id header, API key, neither) and for the ways an API key could be hashed:
what ``proxy.traffic.clients`` chose (the standard library's one-shot ``hmac.digest``) and the
alternatives it was weighed against.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import timeit
from collections.abc import Callable

from proxy.schema import ClientsConfig
from proxy.traffic.clients import ClientIdentifier

SECRET = b"a-32-byte-secret-for-benchmarks!"
KEY = b"sk_live_4f9a1c2e7b5d0d3e8a5f61c9"
HEADERS = [(b"Host", b"api.example.com"), (b"User-Agent", b"app/1.0"), (b"Accept", b"*/*")]


def cases() -> dict[str, Callable[[], object]]:
    identifier = ClientIdentifier(
        ClientsConfig(id_header="X-Client-Id", api_key_header="X-Api-Key"), SECRET
    )
    with_id = [*HEADERS, (b"X-Client-Id", b"mobile-ios")]
    with_key = [*HEADERS, (b"X-Api-Key", KEY)]
    prepared = hmac.new(SECRET, digestmod=hashlib.sha256)
    block = SECRET.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    cache: dict[bytes, str] = {}

    def states() -> str:  # RFC 2104 by hand, on copies of prepared SHA-256 states
        i = inner.copy()
        i.update(KEY)
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()[:16]

    def copied() -> str:
        mac = prepared.copy()
        mac.update(KEY)
        return mac.hexdigest()[:16]

    def cached() -> str:
        found = cache.get(KEY)
        if found is None:
            found = cache[KEY] = states()
        return found

    return {
        "identify: id header": lambda: identifier.identify(with_id, "10.0.0.7"),
        "identify: API key": lambda: identifier.identify(with_key, "10.0.0.7"),
        "identify: peer address": lambda: identifier.identify(HEADERS, "10.0.0.7"),
        "key: plain SHA-256 (before)": lambda: hashlib.sha256(KEY).hexdigest()[:16],
        "key: hmac.digest one-shot (used)": lambda: hmac.digest(SECRET, KEY, "sha256").hex()[:16],
        "key: hmac.new per call": lambda: hmac.new(SECRET, KEY, hashlib.sha256).hexdigest()[:16],
        "key: inner/outer states copied": states,
        "key: prepared hmac.HMAC copied": copied,
        "key: dict cache hit": cached,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000, help="calls per run")
    args = parser.parse_args()
    for name, call in cases().items():
        best = min(timeit.repeat(call, number=args.number, repeat=5)) / args.number
        print(f"{name:38} {best * 1e9:7.0f} ns")


if __name__ == "__main__":
    main()
