"""``switchback rollback``, ``journal list`` and ``journal replay`` as an operator runs them:
the real command, as a process, against a running Switchback's admin API."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.integration.conftest import TOKEN, StartProxy, run_switchback
from tests.integration.journal_helpers import (
    SocketRecorder,
    journal,
    on,
    recorders_fixture,  # noqa: F401 - the recorders fixture
    request,
    send,
)


async def cli(admin: str, *args: str) -> tuple[int, str, str]:
    proc = await run_switchback(*args, "--admin", admin, "--token", TOKEN)
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_rollback_then_list_then_replay_from_the_command_line(
    switchback: StartProxy, recorders: tuple[SocketRecorder, SocketRecorder]
) -> None:
    blue, green = recorders
    proxy = await switchback(on(blue, green, journal={"max_body_bytes": 8}))
    write = request("POST", b"/orders?x=1", b"Idempotency-Key: o-1", b"Authorization: Bearer u",
                    body=b"{}")  # fmt: skip
    assert await send(proxy.port, write) == 201
    assert await send(proxy.port, request("PUT", b"/big", body=b"0123456789")) == 201

    code, out, err = await cli(proxy.admin, "rollback")
    assert code == 0, err
    assert "journal:  green wrote 2 journaled requests since" in out
    assert "switchback journal replay --to blue --dry-run" in out

    code, out, err = await cli(proxy.admin, "journal", "list", "--since", "1h")
    assert code == 0, err
    assert "POST /orders?x=1" in out and "o-1" in out and "not replayable" in out

    code, out, err = await cli(proxy.admin, "journal", "replay", "--to", "blue", "--dry-run")
    assert code == 0, err
    assert "#1 POST /orders?x=1 (Idempotency-Key o-1): would be sent to blue" in out
    assert "#2 PUT /big: refused, not replayable: body of 10 bytes" in out
    assert blue.received == []

    args = ("journal", "replay", "--to", "blue", "--header", "Authorization: Bearer svc")
    code, out, err = await cli(proxy.admin, *args)
    assert code == 0, err
    assert "#1 POST /orders?x=1 (Idempotency-Key o-1): blue answered 201" in out
    assert len(blue.received) == 1 and b"Authorization: Bearer svc\r\n" in blue.received[0]

    code, out, err = await cli(proxy.admin, *args, "--json")
    assert code == 0, err
    assert [("skipped" in r) for r in orjson.loads(out)["results"]] == [True, False]

    code, out, err = await cli(proxy.admin, "journal", "replay", "--to", "purple")
    assert code == 1 and "to: 'purple' is not a release (known: blue, green)" in err
    code, out, err = await cli(proxy.admin, "journal", "list", "--since", "yesterday")
    assert code == 2 and "is not a time" in err


async def test_list_reads_the_state_directory_with_config(
    switchback: StartProxy, recorders: tuple[SocketRecorder, SocketRecorder], tmp_path: Path
) -> None:
    blue, green = recorders
    proxy = await switchback(on(blue, green))
    assert await send(proxy.port, request("PATCH", b"/orders/9", body=b"{}")) == 201
    await journal(proxy)  # written by now
    proc = await run_switchback("journal", "list", "--config", str(proxy.config_path), "--json")
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert [e["target"] for e in orjson.loads(out)["entries"]] == ["/orders/9"]

    empty = tmp_path / "other" / "switchback.yaml"
    empty.parent.mkdir()
    empty.write_text(proxy.config_path.read_text().replace(str(tmp_path / "state"), "nowhere"))
    proc = await run_switchback("journal", "list", "--config", str(empty))
    out, err = await proc.communicate()
    assert proc.returncode == 1
    assert err.decode().startswith("switchback: no journal at nowhere/journal.sqlite3")
