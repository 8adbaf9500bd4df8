"""Who is the client: one string per request, used for stickiness, pins, metrics and the ledger.

Precedence, first match wins:
1. the client-id header (``clients.id_header``): its value, stripped of surrounding whitespace,
   decoded as latin-1 and cut to ``MAX_ID_LENGTH`` characters; an empty value counts as absent;
2. the API-key header (``clients.api_key_header``): ``"key:"`` and the first 16 hex digits of
   HMAC-SHA256(secret, key), the key stripped of surrounding whitespace. The key itself is never
   stored, logged or sent to a metric, and without the secret (``proxy.config.secrets``) an id
   cannot be confirmed by hashing guessed keys;
3. the peer address, as the listener gives it (the IP without port).

This runs on every request: header names are lower-cased bytes computed once, and the scan of
the raw header list compares lengths before it lower-cases a name. The HMAC runs only for a
request that carries the key header (and no client id), as the standard library's one-shot
``hmac.digest`` (OpenSSL's HMAC): about 2 us per key (``loadtest/identify.py``), against some
35 us of CPU for a proxied request. A hand-written RFC 2104 construction on copied SHA-256
states saves 1 us of that; a cache keyed by the raw key would hold live API keys in memory for
the life of the process. Neither is worth it.
"""

from __future__ import annotations

import hmac

from proxy.schema import ClientsConfig

MAX_ID_LENGTH = 128
KEY_PREFIX = "key:"
KEY_HEX_DIGITS = 16


def _header_name(name: str | None) -> bytes:
    # b"" never matches: header names are never empty.
    return name.strip().lower().encode("latin-1") if name else b""


def hash_api_key(key: bytes, secret: bytes) -> str:
    """The client id for an API key: the same wherever the secret is the same; neither the key
    nor, without the secret, a guess at it can be checked against it."""
    return KEY_PREFIX + hmac.digest(secret, key, "sha256").hex()[:KEY_HEX_DIGITS]


class ClientIdentifier:
    """Turns a request's raw headers and peer address into a client id (see module docstring).

    ``secret`` keys the API-key hash; it is required when ``config.api_key_header`` is set.
    """

    __slots__ = ("_id_name", "_id_len", "_key_name", "_key_len", "_secret")

    def __init__(self, config: ClientsConfig, secret: bytes | None = None) -> None:
        self._id_name = _header_name(config.id_header)
        self._id_len = len(self._id_name)
        self._key_name = _header_name(config.api_key_header)
        self._key_len = len(self._key_name)
        if self._key_name and not secret:
            raise ValueError("clients.api_key_header is set: a secret is required")
        self._secret = secret or b""

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
            return hash_api_key(key, self._secret)
        return peer
