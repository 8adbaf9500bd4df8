"""The journal survives SIGKILL: Switchback runs as a real process, the candidate's writes are
committed by the batch writer, the process is killed (no drain, no flush at exit), and the next
process on the same state directory lists them, counts them for a rollback, and replays them."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.integration.conftest import (
    ProxyProcess,
    admin_request,
    run_switchback,
    sample,
    scrape_metrics,
)
from tests.integration.journal_helpers import (
    SocketRecorder,
    on,
    recorders_fixture,  # noqa: F401 - the recorders fixture
    request,
    send,
    wait_for,
)

StartProcess = Callable[..., Awaitable[ProxyProcess]]


async def test_journal_entries_survive_sigkill(
    switchback_process: StartProcess,
    recorders: tuple[SocketRecorder, SocketRecorder],
    tmp_path: Path,
) -> None:
    blue, green = recorders
    config = on(blue, green)
    first = await switchback_process(config)
    for n in range(3):
        data = request("POST", b"/orders/%d" % n, b"Idempotency-Key: k%d" % n, body=b"{}")
        assert await send(first.port, data) == 201

    async def committed() -> bool:
        samples = await scrape_metrics(first.admin)
        return sample(samples, "switchback_journal_entries_total", release="green") == 3

    await wait_for(committed)
    first.proc.send_signal(signal.SIGKILL)
    assert await first.wait(15) == -signal.SIGKILL

    # Read with the process gone, straight from the state directory.
    proc = await run_switchback("journal", "list", "--config", str(tmp_path / "switchback-0.yaml"))
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert "POST /orders/2" in out.decode() and "3 entries" in out.decode()

    second = await switchback_process(config)
    code, listed = await admin_request(second.admin, "GET", "/journal")
    assert code == 200, listed
    assert [e["idempotency_key"] for e in listed["entries"]] == ["k0", "k1", "k2"]
    code, answer = await admin_request(second.admin, "POST", "/rollback")
    assert (code, answer["journal"]["entries"]) == (200, 3)
    code, done = await admin_request(second.admin, "POST", "/journal/replay", {"to": "blue"})
    assert (code, done["sent"]) == (200, 3), done
    assert blue.received == green.received
