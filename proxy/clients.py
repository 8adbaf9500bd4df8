"""Who is the client: one string per request, used for stickiness, pins, metrics and the ledger.

Precedence, first match wins:
1. the client-id header (``clients.id_header``): its value, stripped of surrounding whitespace,
   decoded as latin-1 and cut to ``MAX_ID_LENGTH`` characters; an empty value counts as absent;
2. the API-key header (``clients.api_key_header``): ``"key:"`` and the first 16 hex digits of the
   key's SHA-256, so the key itself is never stored, logged or sent to a metric;
3. the peer address, as the listener gives it (the IP without port).

This runs on every request: header names are lower-cased bytes computed once, and the scan of
the raw header list compares lengths before it lower-cases a name.
"""

from __future__ import annotations

import hashlib

from proxy.config_schema import ClientsConfig

MAX_ID_LENGTH = 128
KEY_PREFIX = "key:"


def _header_name(name: str | None) -> bytes:
    # b"" never matches: header names are never empty.
    return name.strip().lower().encode("latin-1") if name else b""


def hash_api_key(key: bytes) -> str:
    """The client id for an API key: stable across processes, the key not recoverable from it."""
    return KEY_PREFIX + hashlib.sha256(key).hexdigest()[:16]


class ClientIdentifier:
    """Turns a request's raw headers and peer address into a client id (see module docstring)."""

    __slots__ = ("_id_name", "_id_len", "_key_name", "_key_len")

    def __init__(self, config: ClientsConfig) -> None:
        self._id_name = _header_name(config.id_header)
        self._id_len = len(self._id_name)
        self._key_name = _header_name(config.api_key_header)
        self._key_len = len(self._key_name)

    def identify(self, headers: list[tuple[bytes, bytes]], peer: str) -> str:
        """The client id. ``headers`` are (name, value) pairs as received, names in any case.

        Where a header repeats, the first non-empty value counts.
        """
        id_name, id_len = self._id_name, self._id_len
        key_name, key_len = self._key_name, self._key_len
        key = b""
        for name, value in headers:
            size = len(name)
            if size == id_len and name.lower() == id_name:
                value = value.strip()
                if value:
                    return value[:MAX_ID_LENGTH].decode("latin-1")
            elif size == key_len and not key and name.lower() == key_name:
                key = value.strip()
        if key:
            return hash_api_key(key)
        return peer
