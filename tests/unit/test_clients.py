import hashlib

import pytest

from proxy.clients import ClientIdentifier
from proxy.config_schema import ClientsConfig

KEY = b"sk_live_0123456789abcdef"
KEY_ID = "key:" + hashlib.sha256(KEY).hexdigest()[:16]


@pytest.fixture
def identifier() -> ClientIdentifier:
    return ClientIdentifier(ClientsConfig(id_header="X-Client-Id", api_key_header="X-Api-Key"))


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"X-Client-Id", b"mobile-ios"), (b"X-Api-Key", KEY)], "mobile-ios"),
        ([(b"X-Api-Key", KEY), (b"x-client-id", b"mobile-ios")], "mobile-ios"),
        ([(b"X-API-KEY", KEY)], KEY_ID),
        ([(b"X-Client-Id", b"   "), (b"X-Api-Key", KEY)], KEY_ID),
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


def test_api_key_never_appears_in_the_id(identifier: ClientIdentifier) -> None:
    client = identifier.identify([(b"x-api-key", KEY)], "p")
    assert client == KEY_ID
    assert KEY.decode() not in client
    assert identifier.identify([(b"x-api-key", b"another key")], "p") != client


def test_same_key_same_id_across_identifiers() -> None:
    config = ClientsConfig(id_header=None, api_key_header="Authorization")
    a = ClientIdentifier(config).identify([(b"authorization", KEY)], "1.1.1.1")
    b = ClientIdentifier(config).identify([(b"Authorization", KEY)], "2.2.2.2")
    assert a == b == KEY_ID


def test_disabled_headers_fall_through_to_peer() -> None:
    identifier = ClientIdentifier(ClientsConfig(id_header=None, api_key_header=None))
    assert identifier.identify([(b"x-client-id", b"mobile-ios")], "::1") == "::1"


def test_api_key_header_ignored_unless_configured() -> None:
    identifier = ClientIdentifier(ClientsConfig())  # id header only, the default
    assert identifier.identify([(b"x-api-key", KEY)], "10.0.0.7") == "10.0.0.7"
    assert identifier.identify([(b"x-client-id", b"web")], "10.0.0.7") == "web"
