"""A year of usage rows for 10,000 clients in the fleet ledger: the report reads the window
through the ``usage_day`` index, names every client, and prints how long its read took.

Speed lives in benchmarks: nothing here asserts a time. ``LEDGER_YEAR_EVERY`` (default 10)
sets how often a client touches an element: every Nth day, one of three elements (1: every day,
3.65 million rows; the figures are in loadtest/README.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg
import pytest

from proxy.core.report import DAY
from proxy.deprecation.ledger_pg import PgLedger

CLIENTS = 10_000
EVERY = int(os.environ.get("LEDGER_YEAR_EVERY", "10"))
IDS = ["el-0", "el-1", "el-2"]

FILL = """
INSERT INTO usage
SELECT 'el-' || ((cl + d) %% 3), CASE WHEN cl %% 4 = 0 THEN 'use' ELSE 'exposure' END,
       'client-' || cl, %(today)s - d, 1 + cl %% 7,
       (%(today)s - d) * 86400.0 + cl %% 3600, (%(today)s - d) * 86400.0 + 3600 + cl %% 3600
FROM generate_series(0, %(clients)s - 1) cl, generate_series(0, 364) d
WHERE (cl + d) %% %(every)s = 0
"""


@pytest.mark.slow
async def test_a_year_of_rows_for_ten_thousand_clients_reads_the_window_by_index(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    ledger = PgLedger(pg_url, "r1", str(tmp_path), 400, 100_000)
    ledger.register_elements(IDS, now - 400 * DAY)
    await ledger.flush(now)  # migrates the schema
    today = int(now // DAY)
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        started = time.perf_counter()
        await conn.execute(FILL, {"today": today, "clients": CLIENTS, "every": EVERY})
        await conn.execute("ANALYZE usage")
        filled = time.perf_counter() - started
        (rows,) = await (await conn.execute("SELECT count(*) FROM usage")).fetchone() or (0,)
        plan = await conn.execute(
            "EXPLAIN SELECT element, client, kind, sum(count) FROM usage WHERE day >= %s AND "
            "last_seen >= %s GROUP BY element, client, kind",
            (today - 30, now - 30 * DAY),
        )
        text = "\n".join(line for (line,) in await plan.fetchall())
    assert "usage_day" in text, text  # the window is read by index, not the whole table

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        fleet = await ledger.fleet(IDS, time.time(), 30)
        timings.append(time.perf_counter() - started)
    await ledger.close()
    assert len({u.client for u in fleet.usage}) == CLIENTS  # each one touched in any 10 days
    with capsys.disabled():
        print(f"\nledger year: {rows} rows (every {EVERY} day(s), {CLIENTS} clients) filled "
              f"in {filled:.1f} s; 30-day report read {min(timings) * 1000:.0f} ms best of 3, "
              f"{len(fleet.usage)} rows")  # fmt: skip
