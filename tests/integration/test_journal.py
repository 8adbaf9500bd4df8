"""The write journal in front of real releases: what the candidate wrote is journaled, a
rollback says how much, and a replay brings it to the stable release byte for byte, in order,
once."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from tests.integration.conftest import StartProxy, refused_url, sample
from tests.integration.journal_helpers import (
    SocketRecorder,
    journal,
    on,
    recorders_fixture,  # noqa: F401 - the recorders fixture
    replay,
    request,
    send,
    wait_for,
)

Recorders = tuple[SocketRecorder, SocketRecorder]

WRITES = [
    request(
        "POST",
        b"/orders?b=2&a=%7e%20x",
        b"X-Client-Id: shop-1",
        b"Idempotency-Key: order-1",
        b"Content-Type: application/json",
        body=b'{"sku": "A-1", "qty": 2}',
    ),
    request(
        "PUT",
        b"/items//x/./y?",
        b"X-Client-Id: shop-1",
        b"Idempotency-Key: item-7",
        body=b"\x00\x01binary\xff",
    ),
    request("DELETE", b"/orders/1", b"X-Client-Id: shop-2", b"x-custom:  spaced value"),
]


async def test_writes_replay_to_blue_byte_for_byte_in_order_once(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, green = recorders
    proxy = await switchback(on(blue, green))
    for data in WRITES:
        assert await send(proxy.port, data) == 201
    # Reads and the stable release's writes are not journaled.
    assert await send(proxy.port, request("GET", b"/orders", b"X-Client-Id: shop-1")) == 201
    stable_write = request("POST", b"/orders", b"X-Release: blue", body=b"{}")
    assert await send(proxy.port, stable_write) == 201
    assert len(green.received) == 4 and len(blue.received) == 1
    blue.received.clear()

    code, answer = await proxy.admin_call("POST", "/rollback", {"reason": "test"})
    assert code == 200, answer
    assert (answer["journal"]["release"], answer["journal"]["entries"]) == ("green", 3)
    assert answer["journal"]["replay_to"] == "blue"

    listed = await journal(proxy)
    entries = listed["entries"]
    assert [(e["method"], e["target"]) for e in entries] == [
        ("POST", "/orders?b=2&a=%7e%20x"),
        ("PUT", "/items//x/./y?"),
        ("DELETE", "/orders/1"),
    ]
    assert [e["idempotency_key"] for e in entries] == ["order-1", "item-7", None]
    assert [e["status"] for e in entries] == [201, 201, 201]
    assert {e["release"] for e in entries} == {"green"}
    assert all(e["replayable"] for e in entries)

    dry = await replay(proxy, to="blue", dry_run=True)
    assert [r.get("would_send") for r in dry["results"]] == [True, True, True]
    assert blue.received == []

    done = await replay(proxy, to="blue")
    assert [r["status"] for r in done["results"]] == [201, 201, 201]
    assert (done["sent"], done["failed"]) == (3, 0)
    # What blue read off its socket is what green read: the same bytes, in the same order.
    assert blue.received == green.received[:3]
    assert b"Idempotency-Key: order-1\r\n" in blue.received[0]
    assert blue.received[1].endswith(b"\x00\x01binary\xff")

    again = await replay(proxy, to="blue")
    assert [("skipped" in r) for r in again["results"]] == [True, True, True]
    assert len(blue.received) == 3
    listed = await journal(proxy)
    assert [e["replayed"]["status"] for e in listed["entries"]] == [201, 201, 201]

    forced = await replay(proxy, to="blue", again=True)
    assert forced["sent"] == 3
    assert blue.received[3:] == green.received[:3]


async def test_a_body_over_the_cap_is_kept_as_its_digest_and_refused_for_replay(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, green = recorders
    proxy = await switchback(on(blue, green, journal={"max_body_bytes": 16}))
    big = b"x" * 100
    assert await send(proxy.port, request("POST", b"/upload", body=big)) == 201
    assert await send(proxy.port, request("POST", b"/small", body=b"tiny")) == 201
    entries = (await journal(proxy))["entries"]
    assert entries[0]["replayable"] is False
    assert entries[0]["body_sha256"] == hashlib.sha256(big).hexdigest()
    assert entries[0]["body_size"] == 100
    assert "journal.max_body_bytes" in entries[0]["refused"]
    assert entries[1]["replayable"] is True

    done = await replay(proxy, to="blue")
    first, second = done["results"]
    assert "over journal.max_body_bytes (16)" in first["refused"]
    assert second["status"] == 201
    assert len(blue.received) == 1 and blue.received[0].endswith(b"\r\n\r\ntiny")


CREDENTIALED = request(
    "POST",
    b"/pay",
    b"Authorization: Bearer user-secret",
    b"Cookie: session=abc",
    b"X-Api-Key: key-123",
    b"X-Trace: t1",
    body=b"{}",
)


async def test_credentials_are_redacted_and_the_replay_header_takes_their_place(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, green = recorders
    clients = {"api_key_header": "X-Api-Key", "api_key_secret": "s" * 32}
    proxy = await switchback(on(blue, green, clients=clients))
    assert await send(proxy.port, CREDENTIALED) == 201
    (entry,) = (await journal(proxy))["entries"]
    values = dict(entry["headers"])
    assert values["Authorization"] is None and values["Cookie"] is None
    assert values["X-Api-Key"] is None and values["X-Trace"] == "t1"
    assert b"user-secret" not in (Path(proxy.runtime.journal.path)).read_bytes()

    done = await replay(proxy, to="blue", headers=["Authorization: Bearer svc"])
    assert done["sent"] == 1
    (got,) = blue.received
    head = got.split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[1:4] == [b"Host: shop.example", b"Authorization: Bearer svc", b"X-Trace: t1"]
    assert b"Cookie" not in got and b"key-123" not in got and b"user-secret" not in got


async def test_credentials_are_kept_when_configured(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, green = recorders
    clients = {"api_key_header": "X-Api-Key", "api_key_secret": "s" * 32}
    proxy = await switchback(on(blue, green, clients=clients, journal={"keep_credentials": True}))
    assert await send(proxy.port, CREDENTIALED) == 201
    (entry,) = (await journal(proxy))["entries"]
    assert dict(entry["headers"])["Authorization"] == "Bearer user-secret"
    await replay(proxy, to="blue")
    assert blue.received == green.received


async def test_the_journal_file_is_private_and_bounded(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, green = recorders
    proxy = await switchback(on(blue, green, journal={"max_entries": 2}))
    for n in range(4):
        assert await send(proxy.port, request("POST", b"/n/%d" % n, body=b"x")) == 201
    entries = (await journal(proxy))["entries"]
    assert [e["target"] for e in entries] == ["/n/2", "/n/3"]
    path = proxy.runtime.journal.path
    for name in (path, path + "-wal"):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600, name
    samples = await proxy.metrics()
    assert sample(samples, "switchback_journal_entries_total", release="green") == 4
    assert sample(samples, "switchback_journal_dropped_total") == 0


async def test_a_full_queue_drops_and_counts_and_a_file_back_takes_the_rest(
    switchback: StartProxy, recorders: Recorders, tmp_path: Path
) -> None:
    blue, green = recorders
    blocker = tmp_path / "state" / "journal.sqlite3"
    blocker.mkdir(parents=True)  # a directory where the file should be: it cannot be opened
    proxy = await switchback(on(blue, green, journal={"queue_size": 2}))
    for n in range(5):  # the request path never waits for the journal
        assert await send(proxy.port, request("POST", b"/w/%d" % n, body=b"x")) == 201
    samples = await proxy.metrics()
    assert sample(samples, "switchback_journal_dropped_total") == 3
    assert sample(samples, "switchback_journal_write_failures_total") >= 1
    code, body = await proxy.admin_call("GET", "/journal")
    assert (code, body["code"]) == (503, "journal_unavailable"), body
    code, answer = await proxy.admin_call("POST", "/rollback")
    assert (answer["journal"]["entries"], answer["journal"]["dropped"]) == (2, 3)

    blocker.rmdir()

    async def written() -> bool:
        samples = await proxy.metrics()
        return sample(samples, "switchback_journal_entries_total", release="green") == 2

    await wait_for(written)
    entries = (await journal(proxy))["entries"]
    assert [e["target"] for e in entries] == ["/w/0", "/w/1"]


async def test_a_write_the_candidate_never_saw_is_not_journaled(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, _ = recorders
    traffic = {
        "stable": "blue",
        "weights": {"blue": 100, "green": 0},
        "override_header": "X-Release",
    }
    config = {"releases": {"blue": {"url": blue.url}, "green": {"url": refused_url()}},
              "traffic": traffic}  # fmt: skip
    proxy = await switchback(config)
    # Routed to green by the override header; green refuses the connection: blue serves it.
    assert await send(proxy.port, request("POST", b"/o", b"X-Release: green", body=b"{}")) == 201
    assert len(blue.received) == 1
    assert (await journal(proxy))["entries"] == []


async def test_a_body_the_data_plane_does_not_copy_is_refused_for_replay(
    switchback: StartProxy, recorders: Recorders
) -> None:
    blue, green = recorders
    proxy = await switchback(on(blue, green, telemetry={"max_body_bytes": 64}))
    # A body of several reads: the data plane stops copying once it passes the cap.
    data = request("POST", b"/huge", body=b"y" * 1_000_000)
    assert await send(proxy.port, data) == 201
    (entry,) = (await journal(proxy))["entries"]
    assert (entry["replayable"], entry["body_sha256"]) == (False, None)
    assert "telemetry.max_body_bytes" in entry["refused"]
    (result,) = (await replay(proxy, to="blue"))["results"]
    assert "refused" in result and blue.received == []
