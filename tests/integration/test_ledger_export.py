"""``switchback ledger export`` / ``import``: a SQLite ledger moved into PostgreSQL and back, as
a user runs it (``switchback ledger export --config F > ledger.jsonl``), without losing a count."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import yaml

from proxy.core.report import DAY
from proxy.deprecation.ledger import Ledger


def config(path: Path, ledger: str | None = None) -> Path:
    cfg: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "state_dir": str(path.parent / (path.stem + "-state")),
        "releases": {"blue": {"url": "http://127.0.0.1:9"}, "green": {"url": "http://127.0.0.1:9"}},
        "traffic": {"stable": "blue", "weights": {"blue": 100, "green": 0}},
    }
    if ledger is not None:
        cfg["telemetry"] = {"ledger": ledger}
    path.write_text(yaml.safe_dump(cfg))
    return path


def switchback(*args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    done = subprocess.run(
        [sys.executable, "-m", "proxy", *args], input=stdin, capture_output=True, timeout=60
    )
    return done.returncode, done.stdout, done.stderr.decode()


async def make_sqlite_ledger(state: Path) -> None:
    now = time.time()
    ledger = Ledger(str(state / "ledger.sqlite3"), 400, now=now - 40 * DAY)
    ledger.register_elements(["user-role", "users-v0"], now - 40 * DAY)
    for day in range(0, 40, 3):
        at = now - day * DAY
        ledger.watch(["user-role", "users-v0"], at)
        ledger.record("user-role", "exposure", f"client-{day % 4}", at, day + 1)
        ledger.record("user-role", "read", "client-1", at + 1)
        ledger.record("users-v0", "use", "nightly", at - 5, 2)
        await ledger.flush(at)
    await ledger.close()


async def test_a_sqlite_ledger_goes_to_postgresql_and_back_exactly(
    tmp_path: Path, pg_url: str
) -> None:
    old = config(tmp_path / "old.yaml")
    await make_sqlite_ledger(tmp_path / "old-state")
    fleet = config(tmp_path / "fleet.yaml", pg_url)
    back = config(tmp_path / "back.yaml")

    code, exported, err = switchback("ledger", "export", "--config", str(old))
    assert code == 0, err
    lines = [orjson.loads(line) for line in exported.splitlines()]
    assert lines[0]["table"] == "ledger" and len([x for x in lines if x["table"] == "usage"]) > 30

    code, _, err = switchback("ledger", "import", "--config", str(fleet), stdin=exported)
    assert code == 0 and "imported" in err, err
    code, from_pg, err = switchback("ledger", "export", "--config", str(fleet))
    assert code == 0, err
    assert from_pg == exported

    code, _, err = switchback("ledger", "import", "--config", str(back), stdin=from_pg)
    assert code == 0, err
    code, again, err = switchback("ledger", "export", "--config", str(back))
    assert code == 0, err
    assert again == exported


async def test_importing_twice_adds_counts_and_keeps_first_and_last_seen(
    tmp_path: Path, pg_url: str
) -> None:
    old = config(tmp_path / "old.yaml")
    await make_sqlite_ledger(tmp_path / "old-state")
    fleet = config(tmp_path / "fleet.yaml", pg_url)
    _, exported, _ = switchback("ledger", "export", "--config", str(old))
    for _ in range(2):
        assert switchback("ledger", "import", "--config", str(fleet), stdin=exported)[0] == 0
    _, twice, _ = switchback("ledger", "export", "--config", str(fleet))
    once = [orjson.loads(x) for x in exported.splitlines()]
    doubled = [orjson.loads(x) for x in twice.splitlines()]
    assert [x.get("count", 0) * 2 for x in once] == [x.get("count", 0) for x in doubled]
    assert [(x.get("first_seen"), x.get("last_seen")) for x in once] == [
        (x.get("first_seen"), x.get("last_seen")) for x in doubled
    ]


def test_a_bad_line_imports_nothing_and_names_the_line(tmp_path: Path) -> None:
    target = config(tmp_path / "target.yaml")
    text = b'{"table": "ledger", "version": 1, "observing_since": 1.0}\n{"table": "usage"}\n'
    code, _, err = switchback("ledger", "import", "--config", str(target), stdin=text)
    assert code == 1
    assert err.startswith("switchback: line 2: not a ledger line") and "Traceback" not in err
    assert not (tmp_path / "target-state" / "ledger.sqlite3").exists()


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    target = config(tmp_path / "t.yaml", "postgresql://u:s3cret@127.0.0.1:9/db?connect_timeout=2")
    code, _, err = switchback("ledger", "export", "--config", str(target))
    assert code == 1 and err.startswith("switchback: ledger postgresql://u:***@127.0.0.1:9/db")
    assert "s3cret" not in err and "Traceback" not in err
