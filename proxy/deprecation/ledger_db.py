"""The ledger's SQLite file: opening it (schema created, or checked), writing a batch, reading
usage, and telling a corrupt file from one that is only out of reach for now.

A corrupt file (SQLite's ``SQLITE_CORRUPT`` "database disk image is malformed" and
``SQLITE_NOTADB`` "file is not a database", or tables of a shape this version cannot write,
``LedgerCorrupt``) will not get better: ``is_corrupt`` says so, and the ledger sets the file
aside and starts a new one. Any other failure (a full or read-only disk, an I/O error, another
writer holding the lock) may pass: the ledger keeps its counts in memory and tries again.

The file and its ``-wal``/``-shm`` files are mode 0600 (SQLite gives the latter the mode of the
database file). Schema (``PRAGMA journal_mode=WAL``, ``synchronous=NORMAL``: a crash of the
machine may lose the last flush, never corrupt the file):

    usage(element, kind, client, day 'YYYY-MM-DD' UTC, count, first_seen, last_seen)
          primary key (element, kind, client, day); kind is "use", "exposure", "read"
          or "unread" (the last two since schema version 2: declared reads)
    meta(key, value)                  observing_since: when this ledger was first opened;
                                      schema_version (absent: 1)
    elements(id, first_configured)    when each element id first appeared in config
    watched(element, day)             the days (since the epoch, UTC) each element was watched
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from proxy import files

COMPANIONS = ("-wal", "-shm", "-journal")
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    element TEXT NOT NULL,
    kind TEXT NOT NULL,
    client TEXT NOT NULL,
    day TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    PRIMARY KEY (element, kind, client, day)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS elements (id TEXT PRIMARY KEY, first_configured REAL NOT NULL);
CREATE TABLE IF NOT EXISTS watched (
    element TEXT NOT NULL,
    day INTEGER NOT NULL,
    PRIMARY KEY (element, day)
);
"""

# Per table, the columns the ledger writes and each one's place in the primary key (0: none).
TABLES: dict[str, dict[str, int]] = {
    "usage": dict(element=1, kind=2, client=3, day=4, count=0, first_seen=0, last_seen=0),
    "meta": dict(key=1, value=0),
    "elements": dict(id=1, first_configured=0),
    "watched": dict(element=1, day=2),
}

_UPSERT = """
INSERT INTO usage (element, kind, client, day, count, first_seen, last_seen)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (element, kind, client, day) DO UPDATE SET
    count = count + excluded.count,
    first_seen = min(first_seen, excluded.first_seen),
    last_seen = max(last_seen, excluded.last_seen)
"""

# The day filter selects nothing more than the last_seen one (last_seen falls within its day);
# it is there so that SQLite reads the day index instead of the whole table.
_USAGE_SINCE = """
SELECT element, client, kind, sum(count), min(first_seen), max(last_seen) FROM usage
WHERE day >= ? AND last_seen >= ? GROUP BY element, client, kind
"""

UsageTuple = tuple[str, str, str, str, int, float, float]  # element, kind, client, day, ...

# The schema's version, and the SQL bringing a file of the version before up to it. A file is
# migrated when opened, in one transaction; a newer file is used as it is (its version kept).
SCHEMA_VERSION = 2
MIGRATIONS: dict[int, str] = {
    # The kinds "read" and "unread": usage.kind is free text, so rows of version 1 stay valid
    # (clients then sent no field lists) and only the version is recorded.
    2: "",
}


class LedgerCorrupt(Exception):
    """The file is not a ledger this version can use; the message says why.

    Not in ``proxy.errors``' tree: the ledger catches it and sets the file aside; it never
    leaves ``proxy.deprecation``."""


def is_corrupt(exc: BaseException) -> bool:
    """Whether ``exc`` means the file itself is damaged (not a passing failure)."""
    if isinstance(exc, LedgerCorrupt):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    return (
        isinstance(exc, sqlite3.DatabaseError)
        and code is not None
        and code & 0xFF
        in (
            SQLITE_CORRUPT,
            SQLITE_NOTADB,
        )
    )


def schema_problem(tables: Mapping[str, Sequence[tuple[str, int, bool]]]) -> str | None:
    """Why tables given as ``name -> [(column, primary key position, required)]`` cannot hold
    the ledger, or None. ``required``: NOT NULL without a default. Pure."""
    for table, expected in TABLES.items():
        columns = {name: (pk, required) for name, pk, required in tables.get(table, ())}
        for name, pk in expected.items():
            if name not in columns:
                return f"table {table} has no column {name}"
            if columns[name][0] != pk:
                key = ", ".join(n for n, p in sorted(expected.items(), key=lambda i: i[1]) if p)
                return f"table {table} does not have the primary key ({key})"
        for name, (pk, required) in columns.items():
            if name not in expected and (pk or required):
                return f"table {table} has a column this version cannot fill: {name}"
    return None


@dataclass
class Opened:
    """A ledger file opened, with what the ledger keeps in memory from it."""

    conn: sqlite3.Connection
    observing_since: float
    first_configured: dict[str, float]
    watched: dict[str, set[int]]


class SetAside(Exception):
    """A corrupt file found at opening, and already renamed: ``moved``, ``why``.

    Not in ``proxy.errors``' tree: the ledger catches it (it is news for the log and the
    metrics, not an error anyone answers)."""

    def __init__(self, why: str, moved: list[tuple[str, str]]) -> None:
        super().__init__(why)
        self.why = why
        self.moved = moved


def open_db(path: str, observing_since: float) -> Opened:
    """Open (or create) the ledger at ``path``; a new file observes from ``observing_since``.
    A corrupt file is renamed aside and ``SetAside`` raised; other failures raise ``OSError``
    or ``sqlite3.Error``."""
    files.private_dir(os.path.dirname(path) or ".")
    files.ensure_private_file(path, COMPANIONS)
    conn = sqlite3.connect(path, check_same_thread=False)
    try:
        return _read(conn, observing_since)
    except Exception as exc:
        if not is_corrupt(exc):
            conn.close()
            raise
        try:
            # Renamed before closing: the last connection to close deletes a WAL file it
            # could not use, and the file set aside should keep what the disk held.
            moved = set_aside(path)
        finally:
            conn.close()
        raise SetAside(str(exc), moved) from None
    except BaseException:
        conn.close()
        raise


def open_or_replace(
    path: str, observing_since: float
) -> tuple[Opened, list[tuple[str, str]], str | None]:
    """``open_db``, with a corrupt file replaced by a new one: (the file opened, the renames
    made, why). Other failures raise."""
    try:
        return open_db(path, observing_since), [], None
    except SetAside as exc:
        return open_db(path, observing_since), exc.moved, exc.why


def _read(conn: sqlite3.Connection, observing_since: float) -> Opened:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_SCHEMA)
    tables = {
        table: [
            (str(name), int(pk), bool(notnull) and default is None)
            for _, name, _, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})")
        ]
        for table in TABLES
    }
    problem = schema_problem(tables)
    if problem is not None:
        raise LedgerCorrupt(problem)
    conn.execute("CREATE INDEX IF NOT EXISTS usage_day ON usage (day)")
    with conn:
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('observing_since', ?)",
            (observing_since,),
        )
    migrate(conn)
    try:
        (since,) = conn.execute("SELECT value FROM meta WHERE key = 'observing_since'").fetchone()
        first = {
            str(e): float(t) for e, t in conn.execute("SELECT id, first_configured FROM elements")
        }
        watched: dict[str, set[int]] = {}
        for element, day in conn.execute("SELECT element, day FROM watched"):
            watched.setdefault(str(element), set()).add(int(day))
        return Opened(conn, float(since), first, watched)
    except (TypeError, ValueError) as exc:  # values SQLite's loose typing let in
        raise LedgerCorrupt(f"a stored value is not of its column's type ({exc})") from None


def schema_version(conn: sqlite3.Connection) -> int:
    """The file's schema version (1 when it predates versions)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return 1 if row is None else int(row[0])
    except (TypeError, ValueError):
        raise LedgerCorrupt(f"schema_version {row[0]!r} is not a number") from None


def migrate(conn: sqlite3.Connection) -> None:
    """Brings the file up to ``SCHEMA_VERSION`` (nothing to do when it is there or newer)."""
    version = schema_version(conn)
    if version >= SCHEMA_VERSION:
        return
    with conn:
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in filter(str.strip, MIGRATIONS[step].split(";")):
                conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )


def set_aside(path: str) -> list[tuple[str, str]]:
    """Rename a corrupt ledger and its companions to ``<path>.corrupt-<UTC time>...``. Do it
    before closing a connection to it (see ``open_db``)."""
    return files.set_aside(path, "corrupt", time.time(), COMPANIONS)


def write_batch(
    conn: sqlite3.Connection,
    usage: Iterable[UsageTuple],
    elements: Iterable[tuple[str, float]],
    watched: Iterable[tuple[str, int]],
    unwatched: Iterable[tuple[str, int]],
    prune_before: tuple[str, int] | None,
) -> None:
    """One transaction: commits all, or rolls back and raises. ``prune_before``: the first
    day kept, as text and as a day number."""
    with conn:
        conn.executemany(_UPSERT, usage)
        conn.executemany(
            "INSERT OR IGNORE INTO elements (id, first_configured) VALUES (?, ?)", elements
        )
        conn.executemany("INSERT OR IGNORE INTO watched (element, day) VALUES (?, ?)", watched)
        conn.executemany("DELETE FROM watched WHERE element = ? AND day = ?", unwatched)
        if prune_before is not None:
            conn.execute("DELETE FROM usage WHERE day < ?", (prune_before[0],))
            conn.execute("DELETE FROM watched WHERE day < ?", (prune_before[1],))


def read_usage(
    conn: sqlite3.Connection, first_day: str, since: float
) -> list[tuple[str, str, str, int, float, float]]:
    """(element, client, kind, count, first_seen, last_seen) touched at or after ``since``."""
    return conn.execute(_USAGE_SINCE, (first_day, since)).fetchall()
