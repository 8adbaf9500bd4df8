"""The fleet ledger's local spool: batches waiting for PostgreSQL, in a SQLite file.

Every flush of a fleet ledger appends its batch here first (one transaction), and the sender
(``proxy.deprecation.ledger_pg``) delivers the batches oldest first, deleting each once
PostgreSQL committed it. While the database is away the batches wait here, across restarts.
Batch numbers (``seq``) only grow, and the file has a random id (``spool_id``): the database
records, per replica, the last batch it applied, so a batch is applied once even when the
process stopped between the commit and the deletion here.

Bounded at ``max_rows`` usage rows. An append that would go past it merges first, and every
merge keeps each (element, kind, client)'s total count, earliest first-seen and latest
last-seen exact:

1. the waiting batches are folded into the newest one: rows of the same (element, kind,
   client, day) add up;
2. while still over, the oldest day's rows are folded into the same (element, kind, client)'s
   row on its next later day (the day moves forward, so the row's day still holds its
   last-seen; the count keeps the earlier day's touches, as a day's row counts whole anyway).

The rows folded away are returned (``switchback_ledger_spool_merged_total``). When merging
cannot make room (every row is a different client's, or the only day), the append is refused
(``SpoolFull``): the batch stays in the ledger's memory, whose own bound counts what it drops.

The file is 0600 in ``state_dir`` (``proxy.files``). Runs in worker threads: one connection,
guarded by a lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from dataclasses import dataclass, field

from proxy import files
from proxy.deprecation.ledger_memory import Batch

SPOOL_FILE = "ledger-spool.sqlite3"
COMPANIONS = ("-wal", "-shm", "-journal")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, since REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    seq INTEGER NOT NULL, element TEXT NOT NULL, kind TEXT NOT NULL, client TEXT NOT NULL,
    day INTEGER NOT NULL, count INTEGER NOT NULL, first_seen REAL NOT NULL,
    last_seen REAL NOT NULL, PRIMARY KEY (seq, element, kind, client, day)
);
CREATE TABLE IF NOT EXISTS elements (
    seq INTEGER NOT NULL, id TEXT NOT NULL, first_configured REAL NOT NULL,
    PRIMARY KEY (seq, id)
);
CREATE TABLE IF NOT EXISTS watched (
    seq INTEGER NOT NULL, element TEXT NOT NULL, day INTEGER NOT NULL, lossy INTEGER NOT NULL,
    PRIMARY KEY (seq, element, day)
);
"""

Row = tuple[str, str, str, int, int, float, float]  # element, kind, client, day, count, ...


class SpoolFull(Exception):
    """Merging cannot make room for a batch within ``max_rows``; it stays in memory."""


@dataclass
class SpoolBatch:
    """One batch as stored, ready to send."""

    seq: int
    since: float  # the replica's observing_since
    usage: list[Row] = field(default_factory=list)
    elements: list[tuple[str, float]] = field(default_factory=list)
    watched: list[tuple[str, int, bool]] = field(default_factory=list)


class Spool:
    def __init__(self, state_dir: str, max_rows: int) -> None:
        self.path = os.path.join(state_dir, SPOOL_FILE)
        self.max_rows = max_rows
        files.private_dir(state_dir)
        files.ensure_private_file(self.path, COMPANIONS)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('spool_id', ?)",
                (uuid.uuid4().hex,),
            )
        (self.spool_id,) = self._conn.execute(
            "SELECT value FROM meta WHERE key = 'spool_id'"
        ).fetchone()
        self.rows = self._count()

    def _count(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM usage").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def append(self, batch: Batch, since: float) -> int:
        """Stores ``batch`` (one transaction); returns the rows merged to make room. Raises
        ``SpoolFull`` (nothing stored) when merging cannot, ``sqlite3.Error`` or ``OSError``."""
        usage = [
            (element, kind, client, day, t.count, t.first, t.last)
            for (element, kind, client, day), t in batch.usage.items()
        ]
        watched = [(e, d, 0) for e, d in batch.watched] + [(e, d, 1) for e, d in batch.lossy]
        with self._lock, self._conn as conn:
            seq = conn.execute("INSERT INTO batches (since) VALUES (?)", (since,)).lastrowid
            conn.executemany(f"INSERT INTO usage VALUES ({seq}, ?, ?, ?, ?, ?, ?, ?)", usage)
            conn.executemany(
                f"INSERT INTO elements VALUES ({seq}, ?, ?)", list(batch.elements.items())
            )
            conn.executemany(
                f"INSERT INTO watched VALUES ({seq}, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "lossy = max(lossy, excluded.lossy)",
                watched,
            )
            before = self.rows + len(usage)
            after = before if before <= self.max_rows else self._merge(conn)
            if after > self.max_rows:  # leaving the block rolls the append and merge back
                raise SpoolFull(f"spool {self.path} holds {self.rows} rows, the most it keeps")
            self.rows = after
            return before - after

    def _merge(self, conn: sqlite3.Connection) -> int:
        """Folds rows as the module says, until at most ``max_rows``; returns the rows left."""
        (newest,) = conn.execute("SELECT max(seq) FROM batches").fetchone()
        script = f"""
            CREATE TEMP TABLE folded AS SELECT element, kind, client, day, sum(count) AS count,
                min(first_seen) AS first_seen, max(last_seen) AS last_seen
                FROM usage GROUP BY element, kind, client, day;
            DELETE FROM usage;
            INSERT INTO usage SELECT {newest}, * FROM folded;
            DROP TABLE folded;
            CREATE TEMP TABLE folded AS SELECT id, min(first_configured) AS f FROM elements
                GROUP BY id;
            DELETE FROM elements;
            INSERT INTO elements SELECT {newest}, * FROM folded;
            DROP TABLE folded;
            CREATE TEMP TABLE folded AS SELECT element, day, max(lossy) AS lossy FROM watched
                GROUP BY element, day;
            DELETE FROM watched;
            INSERT INTO watched SELECT {newest}, * FROM folded;
            DROP TABLE folded;
            DELETE FROM batches WHERE seq < {newest};
        """
        for statement in filter(str.strip, script.split(";")):  # executescript would commit
            conn.execute(statement)
        rows = self._rows_in(conn)
        days = [d for (d,) in conn.execute("SELECT DISTINCT day FROM usage ORDER BY day")]
        for day in days[:-1]:
            if rows <= self.max_rows:
                break
            rows -= self._fold_day(conn, newest, day)
        return rows

    @staticmethod
    def _rows_in(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM usage").fetchone()[0])

    @staticmethod
    def _fold_day(conn: sqlite3.Connection, seq: int, day: int) -> int:
        """Folds ``day``'s rows into the same key's next later row; returns how many."""
        folded = 0
        rows = conn.execute(
            "SELECT element, kind, client, count, first_seen, last_seen FROM usage WHERE day = ?",
            (day,),
        ).fetchall()
        for element, kind, client, count, first, last in rows:
            key = (seq, element, kind, client)
            later = conn.execute(
                "SELECT day FROM usage WHERE seq = ? AND element = ? AND kind = ? AND "
                "client = ? AND day > ? ORDER BY day LIMIT 1",
                (*key, day),
            ).fetchone()
            if later is None:
                continue
            conn.execute(
                "UPDATE usage SET count = count + ?, first_seen = min(first_seen, ?), "
                "last_seen = max(last_seen, ?) WHERE seq = ? AND element = ? AND kind = ? "
                "AND client = ? AND day = ?",
                (count, first, last, *key, later[0]),
            )
            conn.execute(
                "DELETE FROM usage WHERE seq = ? AND element = ? AND kind = ? AND client = ? "
                "AND day = ?",
                (*key, day),
            )
            folded += 1
        return folded

    def oldest(self) -> SpoolBatch | None:
        """The oldest batch waiting, or None."""
        with self._lock:
            conn = self._conn
            found = conn.execute("SELECT seq, since FROM batches ORDER BY seq LIMIT 1").fetchone()
            if found is None:
                return None
            seq = int(found[0])
            return SpoolBatch(
                seq,
                float(found[1]),
                conn.execute(
                    "SELECT element, kind, client, day, count, first_seen, last_seen FROM usage "
                    "WHERE seq = ?",
                    (seq,),
                ).fetchall(),
                conn.execute(
                    "SELECT id, first_configured FROM elements WHERE seq = ?", (seq,)
                ).fetchall(),
                [
                    (e, d, bool(lossy))
                    for e, d, lossy in conn.execute(
                        "SELECT element, day, lossy FROM watched WHERE seq = ?", (seq,)
                    )
                ],
            )

    def delete(self, seq: int) -> None:
        """Forgets a batch the database committed."""
        with self._lock, self._conn as conn:
            for table in ("usage", "elements", "watched", "batches"):
                conn.execute(f"DELETE FROM {table} WHERE seq = ?", (seq,))
            self.rows = self._count()

    def delete_through(self, seq: int) -> None:
        """Forgets every batch up to ``seq`` (the database says it applied them)."""
        with self._lock, self._conn as conn:
            for table in ("usage", "elements", "watched", "batches"):
                conn.execute(f"DELETE FROM {table} WHERE seq <= ?", (seq,))
            self.rows = self._count()

    def after(self, seq: int) -> tuple[int, list[str]]:
        """The rows of the batches after ``seq``, and the elements they are about."""
        with self._lock:
            (rows,) = self._conn.execute(
                "SELECT count(*) FROM usage WHERE seq > ?", (seq,)
            ).fetchone()
            elements = [
                e
                for (e,) in self._conn.execute(
                    "SELECT element FROM usage WHERE seq > ? UNION "
                    "SELECT element FROM watched WHERE lossy AND seq > ?",
                    (seq, seq),
                )
            ]
        return int(rows), sorted(elements)

    def unsent(self) -> tuple[list[Row], list[str]]:
        """Every usage row waiting, and the elements they (or a lost touch) are about."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT element, kind, client, day, count, first_seen, last_seen FROM usage"
            ).fetchall()
            elements = [
                e
                for (e,) in self._conn.execute(
                    "SELECT element FROM usage UNION SELECT element FROM watched WHERE lossy"
                )
            ]
        return rows, sorted(elements)
