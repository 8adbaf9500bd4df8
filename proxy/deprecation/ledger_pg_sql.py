"""The fleet ledger's PostgreSQL schema, its migrations, and the statements that write and read it.

The schema is migrated when a replica connects: in one transaction holding the advisory lock
``MIGRATION_LOCK`` (``pg_advisory_xact_lock``), so that two replicas starting at once apply each
step once; ``ledger_schema`` holds one row per version applied. A database of a newer version
than this one knows is used as it is (its tables only gain columns and tables).

    usage(element, kind, client, day, count, first_seen, last_seen)
          primary key (element, kind, client, day); day: whole UTC days since the epoch
          (the SQLite file keeps 'YYYY-MM-DD'); index usage_day (day, last_seen)
    elements(id, first_configured)          the earliest any replica configured the element
    watched(element, day, lossy)            some replica watched it that day; lossy: some
                                            replica lost a touch of it that day (not observed)
    meta(key, value)                        observing_since: the earliest any replica watched
    replicas(replica, spool, last_batch, last_write, unsent_rows, unsent_elements)
          each replica's last write, the last spool batch applied (exactly once), and what
          its spool still held then

Every write is an upsert that adds counts and keeps the earliest first-seen and the latest
last-seen, so replicas write side by side without coordinating.
"""

from __future__ import annotations

from typing import Any

MIGRATION_LOCK = 0x5357_4C45_0001  # pg_advisory_xact_lock key: schema migration
PRUNE_LOCK = 0x5357_4C45_0002  # pg_try_advisory_lock key: one replica prunes at a time

MIGRATIONS: dict[int, str] = {
    1: """
CREATE TABLE usage (
    element text NOT NULL,
    kind text NOT NULL,
    client text NOT NULL,
    day integer NOT NULL,
    count bigint NOT NULL,
    first_seen double precision NOT NULL,
    last_seen double precision NOT NULL,
    PRIMARY KEY (element, kind, client, day)
);
CREATE INDEX usage_day ON usage (day, last_seen);
CREATE TABLE elements (id text PRIMARY KEY, first_configured double precision NOT NULL);
CREATE TABLE watched (
    element text NOT NULL,
    day integer NOT NULL,
    lossy boolean NOT NULL DEFAULT false,
    PRIMARY KEY (element, day)
);
CREATE INDEX watched_day ON watched (day);
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE replicas (
    replica text PRIMARY KEY,
    spool text NOT NULL,
    last_batch bigint NOT NULL,
    last_write double precision NOT NULL,
    unsent_rows bigint NOT NULL DEFAULT 0,
    unsent_elements text[] NOT NULL DEFAULT '{}'
);
""",
}
SCHEMA_VERSION = max(MIGRATIONS)

CREATE_VERSIONS = """
CREATE TABLE IF NOT EXISTS ledger_schema (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

UPSERT_USAGE = """
INSERT INTO usage (element, kind, client, day, count, first_seen, last_seen)
SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[], %s::bigint[],
                     %s::double precision[], %s::double precision[])
ON CONFLICT (element, kind, client, day) DO UPDATE SET
    count = usage.count + excluded.count,
    first_seen = least(usage.first_seen, excluded.first_seen),
    last_seen = greatest(usage.last_seen, excluded.last_seen)
"""

UPSERT_ELEMENTS = """
INSERT INTO elements (id, first_configured)
SELECT * FROM unnest(%s::text[], %s::double precision[])
ON CONFLICT (id) DO UPDATE SET
    first_configured = least(elements.first_configured, excluded.first_configured)
"""

UPSERT_WATCHED = """
INSERT INTO watched (element, day, lossy)
SELECT * FROM unnest(%s::text[], %s::integer[], %s::boolean[])
ON CONFLICT (element, day) DO UPDATE SET lossy = watched.lossy OR excluded.lossy
"""

UPSERT_SINCE = """
INSERT INTO meta (key, value) VALUES ('observing_since', %s)
ON CONFLICT (key) DO UPDATE SET
    value = least(meta.value::double precision, excluded.value::double precision)::text
"""

LAST_BATCH = "SELECT spool, last_batch FROM replicas WHERE replica = %s FOR UPDATE"

UPSERT_REPLICA = """
INSERT INTO replicas (replica, spool, last_batch, last_write, unsent_rows, unsent_elements)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (replica) DO UPDATE SET
    spool = excluded.spool, last_batch = excluded.last_batch, last_write = excluded.last_write,
    unsent_rows = excluded.unsent_rows, unsent_elements = excluded.unsent_elements
"""

# The day filter selects nothing more than the last_seen one (last_seen falls within its day);
# it lets PostgreSQL read the usage_day index instead of the whole table.
USAGE_SINCE = """
SELECT element, client, kind, sum(count)::bigint, min(first_seen), max(last_seen) FROM usage
WHERE day >= %s AND last_seen >= %s GROUP BY element, client, kind
"""

WATCHED_IN = "SELECT element, day, lossy FROM watched WHERE day >= %s AND day <= %s"

REPLICAS_SINCE = """
SELECT replica, last_write, unsent_rows, unsent_elements FROM replicas
WHERE last_write >= %s ORDER BY replica
"""


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as ``width`` column lists (for ``unnest``). Pure."""
    return [[row[i] for row in rows] for i in range(width)] if rows else [[]] * width
