"""The journal's pure parts: what is journaled, redaction, the replay's bytes, retention."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from proxy.journal import store
from proxy.journal.entry import (
    credential_names,
    journals,
    make_entry,
    parse_header,
    redact,
    replay_request,
    with_added,
)
from proxy.pipeline import Exchange

SECRET = credential_names("X-Api-Key")


@pytest.mark.parametrize(
    ("method", "release", "expected"),
    [
        ("POST", "green", True),
        ("PATCH", "green", True),
        ("DELETE", "green", True),
        ("PROPFIND", "green", True),
        ("GET", "green", False),
        ("HEAD", "green", False),
        ("OPTIONS", "green", False),
        ("TRACE", "green", False),
        ("POST", "blue", False),
    ],
)
def test_only_unsafe_methods_of_the_candidate(method: str, release: str, expected: bool) -> None:
    assert journals(method, release, "green", "blue") is expected


def test_redaction_keeps_names_and_places() -> None:
    headers = [(b"Host", b"h"), (b"AUTHORIZATION", b"Bearer x"), (b"x-api-key", b"k"),
               (b"Cookie", b"c"), (b"Proxy-Authorization", b"p")]  # fmt: skip
    assert redact(headers, SECRET, keep=False) == [
        (b"Host", b"h"),
        (b"AUTHORIZATION", None),
        (b"x-api-key", None),
        (b"Cookie", None),
        (b"Proxy-Authorization", None),
    ]
    assert redact(headers, SECRET, keep=True) == headers


def test_added_headers_take_the_place_of_their_namesakes() -> None:
    headers = [(b"A", b"1"), (b"Authorization", None), (b"B", b"2"), (b"authorization", b"x")]
    added = [(b"Authorization", b"Bearer svc"), (b"X-New", b"n")]
    assert with_added(headers, added) == [
        (b"A", b"1"),
        (b"Authorization", b"Bearer svc"),
        (b"B", b"2"),
        (b"X-New", b"n"),
    ]


@pytest.mark.parametrize("text", ["no colon", ": empty", "Bad Name: v", "A: b\r\nC: d"])
def test_bad_headers_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_header(text)


def exchange(method: str = "POST", headers: list[tuple[bytes, bytes]] | None = None) -> Exchange:
    ex = Exchange(method, b"/a%2Fb?x=1&&y", headers or [(b"Host", b"h")], "10.0.0.7")
    ex.release, ex.client_id, ex.status = "green", "c1", 201
    return ex


def test_an_entry_over_the_cap_keeps_the_digest_only() -> None:
    body = b"z" * 10
    entry = make_entry(exchange(), body, 1.0, 9, SECRET, False)
    assert entry.body is None and entry.body_size == 10
    assert entry.body_sha256 == hashlib.sha256(body).hexdigest()
    assert entry.refused is not None and "journal.max_body_bytes (9)" in entry.refused
    assert make_entry(exchange(), body, 1.0, 10, SECRET, False).refused is None


def test_an_entry_without_its_body_is_not_replayable() -> None:
    ex = exchange()
    assert make_entry(ex, None, 1.0, 10, SECRET, False).refused == "body not received whole"
    ex.request_skipped = "too_large"
    assert "telemetry.max_body_bytes" in (
        make_entry(ex, None, 1.0, 10, SECRET, False).refused or ""
    )


def test_the_replay_is_the_forwarded_request() -> None:
    headers = [(b"Host", b"h"), (b"Connection", b"keep-alive"), (b"Idempotency-Key", b"k"),
               (b"Content-Length", b"2")]  # fmt: skip
    entry = make_entry(exchange(headers=headers), b"{}", 1.0, 10, SECRET, False)
    assert entry.idempotency_key == "k"
    assert replay_request(entry, [], False) == (
        b"POST /a%2Fb?x=1&&y HTTP/1.1\r\nHost: h\r\nIdempotency-Key: k\r\nContent-Length: 2\r\n"
        b"X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h\r\n\r\n{}"
    )


def test_a_chunked_request_is_replayed_chunked() -> None:
    headers = [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")]
    entry = make_entry(exchange(headers=headers), b"hello", 1.0, 10, SECRET, False)
    data = replay_request(entry, [], False)
    assert data.endswith(b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")


def test_retention_by_age_and_by_count(tmp_path: Path) -> None:
    conn, _ = store.open_db(str(tmp_path / "j.sqlite3"))
    entries = [make_entry(exchange(), b"", t, 10, SECRET, False) for t in (100.0, 200.0, 300.0)]
    store.write_batch(conn, entries, {}, keep_after=150.0, max_entries=10)
    assert [s.entry.time for s in store.read(conn)] == [200.0, 300.0]
    store.write_batch(conn, entries[2:] * 3, {}, keep_after=0.0, max_entries=2)
    assert [s.entry.id for s in store.read(conn)] == [5, 6]
    conn.close()


def test_a_corrupt_file_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    path.write_bytes(b"this is not a database at all" * 100)
    conn, moved = store.open_db(str(path))
    assert moved and Path(moved[0][1]).read_bytes().startswith(b"this is not")
    assert store.read(conn) == []
    conn.close()
    with pytest.raises(sqlite3.DatabaseError):
        sqlite3.connect(moved[0][1]).execute("SELECT * FROM entries")
