import hashlib
import hmac

import pytest

from proxy.schema import ClientsConfig
from proxy.traffic.clients import ClientIdentifier, hash_api_key

KEY = b"sk_live_0123456789abcdef"
SECRET = b"0123456789abcdef-test-secret"
# Computed here from RFC 2104 as the standard library implements it, not by the code under test.
KEY_ID = "key:" + hmac.new(SECRET, KEY, hashlib.sha256).hexdigest()[:16]
CONFIG = ClientsConfig(id_header="X-Client-Id", api_key_header="X-Api-Key")


def key_id(identifier: ClientIdentifier, key: bytes) -> str:
    return identifier.identify([(b"X-Api-Key", key)], "10.0.0.7")


@pytest.fixture
def identifier() -> ClientIdentifier:
    return ClientIdentifier(CONFIG, SECRET)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"X-Client-Id", b"mobile-ios"), (b"X-Api-Key", KEY)], "mobile-ios"),
        ([(b"X-Api-Key", KEY), (b"x-client-id", b"mobile-ios")], "mobile-ios"),
        ([(b"X-API-KEY", KEY)], KEY_ID),
        ([(b"X-Api-Key", b"  " + KEY + b"\t")], KEY_ID),
        ([(b"X-Client-Id", b"   "), (b"X-Api-Key", KEY)], KEY_ID),
        ([(b"X-Api-Key", b""), (b"X-Api-Key", KEY)], KEY_ID),
        ([(b"X-Client-Id", b"")], "10.0.0.7"),
        ([(b"X-Api-Key", b" ")], "10.0.0.7"),
        ([(b"Host", b"api.example.com"), (b"Accept", b"*/*")], "10.0.0.7"),
        ([], "10.0.0.7"),
    ],
)
def test_precedence_id_header_then_api_key_then_peer(
    identifier: ClientIdentifier, headers: list[tuple[bytes, bytes]], expected: str
) -> None:
    assert identifier.identify(headers, "10.0.0.7") == expected


def test_id_header_is_stripped_decoded_latin1_and_capped(identifier: ClientIdentifier) -> None:
    assert identifier.identify([(b"x-client-id", b"  caf\xe9 \t")], "p") == "caf\u00e9"
    assert identifier.identify([(b"x-client-id", b"a" * 500)], "p") == "a" * 128


def test_an_api_key_id_is_the_keyed_hmac_and_never_the_key(identifier: ClientIdentifier) -> None:
    client = key_id(identifier, KEY)
    assert client == KEY_ID == hash_api_key(KEY, SECRET)
    assert KEY.decode() not in client and SECRET.decode() not in client


def test_two_keys_give_two_ids_each_stable(identifier: ClientIdentifier) -> None:
    other = b"sk_live_fedcba9876543210"
    first = [key_id(identifier, KEY), key_id(identifier, other)]
    again = [key_id(identifier, KEY), key_id(identifier, other)]
    assert first == again
    assert first[0] != first[1]


def test_the_id_is_not_a_plain_hash_of_the_key(identifier: ClientIdentifier) -> None:
    # What anyone holding a guessed key could compute: it must not confirm the guess.
    for digest in (hashlib.sha256, hashlib.sha1, hashlib.md5, hashlib.blake2b):
        assert digest(KEY).hexdigest()[:16] not in key_id(identifier, KEY)


def test_the_id_changes_with_the_secret() -> None:
    ids = {key_id(ClientIdentifier(CONFIG, s), KEY) for s in (SECRET, SECRET + b"!", b"x" * 100)}
    assert len(ids) == 3


@pytest.mark.parametrize("size", [16, 64, 65, 200])  # HMAC hashes secrets over 64 bytes first
def test_any_secret_length_gives_the_standard_hmac(size: int) -> None:
    secret = bytes(i % 251 for i in range(size))
    expected = "key:" + hmac.new(secret, KEY, hashlib.sha256).hexdigest()[:16]
    assert key_id(ClientIdentifier(CONFIG, secret), KEY) == expected


def test_same_key_and_secret_same_id_across_identifiers() -> None:
    config = ClientsConfig(id_header=None, api_key_header="Authorization")
    a = ClientIdentifier(config, SECRET).identify([(b"authorization", KEY)], "1.1.1.1")
    b = ClientIdentifier(config, SECRET).identify([(b"Authorization", KEY)], "2.2.2.2")
    assert a == b == KEY_ID


def test_an_api_key_header_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="a secret is required"):
        ClientIdentifier(CONFIG)
    with pytest.raises(ValueError, match="a secret is required"):
        ClientIdentifier(CONFIG, b"")


def test_disabled_headers_fall_through_to_peer() -> None:
    identifier = ClientIdentifier(ClientsConfig(id_header=None, api_key_header=None))
    assert identifier.identify([(b"x-client-id", b"mobile-ios")], "::1") == "::1"


def test_api_key_header_ignored_unless_configured() -> None:
    identifier = ClientIdentifier(ClientsConfig())  # id header only, the default
    assert identifier.identify([(b"x-api-key", KEY)], "10.0.0.7") == "10.0.0.7"
    assert identifier.identify([(b"x-client-id", b"web")], "10.0.0.7") == "web"
