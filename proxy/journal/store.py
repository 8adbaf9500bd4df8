"""The journal's SQLite file: opening it, writing a batch, reading entries, marking replays.

Every function here is blocking: the journal (``proxy.journal.journal``) calls them in a
worker thread, holding its lock. The file and its ``-wal``/``-shm`` files are mode 0600
(``proxy.files``; SQLite gives the latter the mode of the database file).

Durability: ``journal_mode=WAL`` with ``synchronous=FULL``. A committed batch is in the WAL
before the commit returns, which is all a SIGKILL of the process needs (the kernel has the
bytes); FULL also fsyncs the WAL at each commit, so a power cut does not lose a batch that was
committed either. It costs one fsync per batch (the writer commits at most every
``journal.flush_seconds``), never one per request; the ledger, whose counts matter less, uses
NORMAL. A file found corrupt at opening is set aside (``journal.sqlite3.corrupt-<UTC time>``)
and a new one begins.

    entries(id, time, client, peer, release, method, target BLOB, headers BLOB (msgpack),
            body BLOB, body_size, body_sha256, refused, status, outcome, idempotency_key,
            replayed_at, replayed_to, replay_status, replay_error)
    meta(key, value)      episode_start: since when the candidate's entries count for a rollback
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from proxy import files
from proxy.journal.entry import Entry

FILE = "journal.sqlite3"  # in state_dir
COMPANIONS = ("-wal", "-shm", "-journal")
DAY = 86400.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    client TEXT NOT NULL,
    peer TEXT NOT NULL,
    release TEXT NOT NULL,
    method TEXT NOT NULL,
    target BLOB NOT NULL,
    headers BLOB NOT NULL,
    body BLOB,
    body_size INTEGER,
    body_sha256 TEXT,
    refused TEXT,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    idempotency_key TEXT,
    replayed_at REAL,
    replayed_to TEXT,
    replay_status INTEGER,
    replay_error TEXT
);
CREATE INDEX IF NOT EXISTS entries_time ON entries (time);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
"""

_COLUMNS = (
    "time, client, peer, release, method, target, headers, body, body_size, body_sha256, "
    "refused, status, outcome, idempotency_key"
)
_INSERT = f"INSERT INTO entries ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"
_REPLAY = "replayed_at, replayed_to, replay_status, replay_error"
_SELECT = f"SELECT id, {_COLUMNS}, {_REPLAY} FROM entries"

_headers_encoder = msgspec.msgpack.Encoder()
_headers_decoder = msgspec.msgpack.Decoder(list[tuple[bytes, bytes | None]])


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """An entry as stored, with what its replay did (``replayed_at`` None: never replayed)."""

    entry: Entry
    replayed_at: float | None
    replayed_to: str | None
    replay_status: int | None
    replay_error: str | None


def is_corrupt(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.DatabaseError) and code is not None and code & 0xFF in (11, 26)


def open_db(path: str) -> tuple[sqlite3.Connection, list[tuple[str, str]]]:
    """The journal at ``path`` (created 0600 when missing, its folder 0700), and the renames
    made if a corrupt file had to be set aside first."""
    moved: list[tuple[str, str]] = []
    try:
        return _open(path), moved
    except sqlite3.DatabaseError as exc:
        if not is_corrupt(exc):
            raise
        moved = files.set_aside(path, "corrupt", time.time(), COMPANIONS)
    return _open(path), moved


def read_file(path: str, **filters: Any) -> list[Stored]:
    """The entries of the journal at ``path``, read without a running Switchback (the CLI's
    ``journal list --config``); FileNotFoundError when there is none."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        return read(conn, **filters)
    finally:
        conn.close()


def _open(path: str) -> sqlite3.Connection:
    files.private_dir(os.path.dirname(path) or ".")
    files.ensure_private_file(path, COMPANIONS)
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        conn.execute("SELECT count(*) FROM entries").fetchone()
    except BaseException:
        conn.close()
        raise
    files.ensure_private_file(path, COMPANIONS)  # the -wal and -shm files now exist
    return conn


def _row(entry: Entry) -> tuple[Any, ...]:
    return (
        entry.time,
        entry.client,
        entry.peer,
        entry.release,
        entry.method,
        entry.target,
        _headers_encoder.encode(entry.headers),
        entry.body,
        entry.body_size,
        entry.body_sha256,
        entry.refused,
        entry.status,
        entry.outcome,
        entry.idempotency_key,
    )


def write_batch(
    conn: sqlite3.Connection,
    entries: Sequence[Entry],
    meta: dict[str, float],
    keep_after: float,
    max_entries: int,
) -> None:
    """One transaction: the entries, the meta values, and the retention (entries older than
    ``keep_after`` deleted, then all but the newest ``max_entries``)."""
    with _transaction(conn):
        conn.executemany(_INSERT, [_row(e) for e in entries])
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            list(meta.items()),
        )
        prune(conn, keep_after, max_entries)


def prune(conn: sqlite3.Connection, keep_after: float, max_entries: int) -> None:
    conn.execute("DELETE FROM entries WHERE time < ?", (keep_after,))
    conn.execute(
        "DELETE FROM entries WHERE id <= (SELECT max(id) FROM entries) - ?", (max_entries,)
    )


class _transaction:
    """BEGIN ... COMMIT, or ROLLBACK and raise (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self.conn.execute("COMMIT" if exc is None else "ROLLBACK")


def read_meta(conn: sqlite3.Connection, key: str) -> float | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None or not isinstance(row[0], int | float) else float(row[0])


def count(conn: sqlite3.Connection, release: str, since: float) -> int:
    sql = "SELECT count(*) FROM entries WHERE release = ? AND time >= ?"
    return int(conn.execute(sql, (release, since)).fetchone()[0])


def read(
    conn: sqlite3.Connection,
    since: float | None = None,
    release: str | None = None,
    not_release: str | None = None,
    limit: int | None = None,
) -> list[Stored]:
    """Entries in the order they were written, oldest first, filtered as given."""
    where, args = [], []
    for clause, value in (
        ("time >= ?", since),
        ("release = ?", release),
        ("release != ?", not_release),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id"
    if limit is not None:
        # The newest ``limit``, still oldest first.
        sql = f"SELECT * FROM ({sql.replace(' ORDER BY id', ' ORDER BY id DESC')} LIMIT ?) "
        sql += "ORDER BY id"
        args.append(limit)
    return [_stored(row) for row in conn.execute(sql, args)]


def _stored(row: tuple[Any, ...]) -> Stored:
    (ident, when, client, peer, release, method, target, headers, body, size, digest) = row[:11]
    refused, status, outcome, key, at, to, rstatus, rerror = row[11:]
    entry = Entry(
        id=int(ident),
        time=float(when),
        client=str(client),
        peer=str(peer),
        release=str(release),
        method=str(method),
        target=bytes(target),
        headers=list(_headers_decoder.decode(headers)),
        body=None if body is None else bytes(body),
        body_size=size,
        body_sha256=digest,
        refused=refused,
        status=int(status),
        outcome=str(outcome),
        idempotency_key=key,
    )
    return Stored(
        entry=entry, replayed_at=at, replayed_to=to, replay_status=rstatus, replay_error=rerror
    )


def mark_replayed(
    conn: sqlite3.Connection,
    ident: int,
    at: float,
    to: str,
    status: int | None,
    error: str | None,
) -> None:
    conn.execute(
        "UPDATE entries SET replayed_at = ?, replayed_to = ?, replay_status = ?, "
        "replay_error = ? WHERE id = ?",
        (at, to, status, error, ident),
    )
