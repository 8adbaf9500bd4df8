"""``switchback ledger export`` and ``import``: a ledger's history as JSON lines, from either
backend (the SQLite file in ``state_dir`` or the PostgreSQL database of ``telemetry.ledger``)
to either, without losing a count.

One JSON object a line, with a ``table`` key:

    {"table": "ledger", "version": 1, "observing_since": 1780000000.0}        first line
    {"table": "element", "id": ..., "first_configured": ...}
    {"table": "watched", "element": ..., "day": 20610, "lossy": false}       day: UTC days
    {"table": "usage", "element": ..., "kind": ..., "client": ..., "day": "2026-06-01",
     "count": 3, "first_seen": ..., "last_seen": ...}

Importing adds: counts add up, the earliest first-seen / first-configured / observing-since
and the latest last-seen are kept, a lossy day stays lossy (the SQLite file keeps no lossy
days: it drops them). Importing into an empty ledger therefore reproduces the export exactly.
The export reads the stored rows: a replica's spool not yet delivered is not in it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import time
from collections.abc import Coroutine, Iterable, Iterator
from typing import IO, Any, TypeVar

import orjson
import psycopg

from proxy.core.dburl import redacted
from proxy.deprecation import ledger_db
from proxy.deprecation import ledger_pg_sql as sql
from proxy.deprecation.ledger_memory import day_text
from proxy.deprecation.ledger_pg import migrate
from proxy.errors import LedgerError

FORMAT = 1
DAY = 86_400


T = TypeVar("T")


def _on_pg(url: str, job: Coroutine[Any, Any, T]) -> T:
    """Runs ``job``; the database's failures as ``LedgerError``, without the password."""
    try:
        return asyncio.run(job)
    except (psycopg.Error, OSError) as exc:
        raise LedgerError(
            f"ledger {redacted(url)}: {str(exc).replace(url, redacted(url))}"
        ) from None


def _day_number(text: str) -> int:
    return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days


def _lines(since: float | None, elements: Iterable[Any], watched: Iterable[Any],
           usage: Iterable[Any]) -> Iterator[dict[str, Any]]:  # fmt: skip
    yield {"table": "ledger", "version": FORMAT, "observing_since": since}
    for id_, first in elements:
        yield {"table": "element", "id": id_, "first_configured": float(first)}
    for element, day, lossy in watched:
        yield {"table": "watched", "element": element, "day": int(day), "lossy": bool(lossy)}
    for element, kind, client, day, count, first, last in usage:
        yield {"table": "usage", "element": element, "kind": kind, "client": client,
               "day": day if isinstance(day, str) else day_text(int(day)), "count": int(count),
               "first_seen": float(first), "last_seen": float(last)}  # fmt: skip


def export_lines(url: str | None, sqlite_path: str) -> Iterator[dict[str, Any]]:
    """The ledger's rows, ordered; ``url`` None: the SQLite file."""
    if url is not None:
        return iter(_on_pg(url, _pg_export(url)))
    if not os.path.exists(sqlite_path):
        raise LedgerError(f"ledger {sqlite_path} does not exist")
    conn = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'observing_since'").fetchone()
        q = conn.execute
        return iter(list(_lines(
            float(row[0]) if row else None,
            q("SELECT id, first_configured FROM elements ORDER BY id"),
            q("SELECT element, day, 0 FROM watched ORDER BY element, day"),
            q("SELECT element, kind, client, day, count, first_seen, last_seen FROM usage "
              "ORDER BY element, kind, client, day"),
        )))  # fmt: skip
    except sqlite3.Error as exc:
        raise LedgerError(f"ledger {sqlite_path} cannot be read: {exc}") from None
    finally:
        conn.close()


async def _pg_export(url: str) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        async with conn.transaction():
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            meta = await (await conn.execute(
                "SELECT value FROM meta WHERE key = 'observing_since'")).fetchone()  # fmt: skip
            queries = [
                'SELECT id, first_configured FROM elements ORDER BY id COLLATE "C"',
                'SELECT element, day, lossy FROM watched ORDER BY element COLLATE "C", day',
                "SELECT element, kind, client, day, count, first_seen, last_seen FROM usage "
                'ORDER BY element COLLATE "C", kind COLLATE "C", client COLLATE "C", day',
            ]
            elements, watched, usage = [await (await conn.execute(q)).fetchall() for q in queries]
    return list(_lines(float(meta[0]) if meta else None, elements, watched, usage))


def write_lines(lines: Iterable[dict[str, Any]], out: IO[bytes]) -> int:
    n = 0
    for line in lines:
        out.write(orjson.dumps(line) + b"\n")
        n += 1
    return n


def read_lines(source: IO[bytes]) -> tuple[float | None, list[Any], list[Any], list[Any]]:
    """(observing_since, elements, watched, usage) from JSON lines; ``LedgerError`` names the
    line of a bad one, and nothing is imported."""
    since: float | None = None
    elements, watched, usage = [], [], []
    for number, raw in enumerate(source, 1):
        if not raw.strip():
            continue
        try:
            line = orjson.loads(raw)
            table = line["table"]
            if table == "ledger":
                since = None if line["observing_since"] is None else float(line["observing_since"])
            elif table == "element":
                elements.append((str(line["id"]), float(line["first_configured"])))
            elif table == "watched":
                watched.append((str(line["element"]), int(line["day"]), bool(line["lossy"])))
            elif table == "usage":
                usage.append((str(line["element"]), str(line["kind"]), str(line["client"]),
                              _day_number(line["day"]), int(line["count"]),
                              float(line["first_seen"]), float(line["last_seen"])))  # fmt: skip
            else:
                raise ValueError(f"unknown table {table!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"line {number}: not a ledger line ({exc}); nothing imported"
            ) from None
    return since, elements, watched, usage


def import_lines(url: str | None, sqlite_path: str, source: IO[bytes]) -> int:
    """Adds the lines' rows to the ledger in one transaction; returns the usage rows."""
    since, elements, watched, usage = read_lines(source)
    if url is not None:
        _on_pg(url, _pg_import(url, since, elements, watched, usage))
        return len(usage)
    opened = ledger_db.open_db(sqlite_path, since if since is not None else time.time())
    conn = opened.conn
    try:
        with conn:
            if since is not None:
                conn.execute("UPDATE meta SET value = min(value, ?) WHERE key = 'observing_since'",
                             (since,))  # fmt: skip
            conn.executemany(
                "INSERT INTO elements VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET "
                "first_configured = min(first_configured, excluded.first_configured)",
                elements,
            )
            conn.executemany("INSERT OR IGNORE INTO watched VALUES (?, ?)",
                             [(e, d) for e, d, lossy in watched if not lossy])  # fmt: skip
            conn.executemany("DELETE FROM watched WHERE element = ? AND day = ?",
                             [(e, d) for e, d, lossy in watched if lossy])  # fmt: skip
            conn.executemany(
                ledger_db._UPSERT,
                [(e, k, c, day_text(d), n, f, la) for e, k, c, d, n, f, la in usage],
            )
    finally:
        conn.close()
    return len(usage)


async def _pg_import(url: str, since: float | None, elements: list[Any], watched: list[Any],
                     usage: list[Any]) -> None:  # fmt: skip
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        async with conn.transaction():
            if since is not None:
                await conn.execute(sql.UPSERT_SINCE, (str(since),))
            if elements:
                await conn.execute(sql.UPSERT_ELEMENTS, sql.columns(elements, 2))
            if watched:
                await conn.execute(sql.UPSERT_WATCHED, sql.columns(watched, 3))
            for start in range(0, len(usage), 10_000):  # bounded statements
                chunk = usage[start : start + 10_000]
                await conn.execute(sql.UPSERT_USAGE, sql.columns(chunk, 7))
