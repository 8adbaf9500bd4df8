"""The log's pure parts: escaping, the clock, the access step's record, the three formats one
line and a batch at a time, the writer's fallback, the refusal limiter, the config checks."""

from __future__ import annotations

import asyncio
import calendar
import os
import re
import time
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.logs import access
from proxy.logs.access import AccessLog
from proxy.logs.lines import FORMATS, LOG, AccessLine, Encoded, Record, quote
from proxy.logs.refusals import RefusalLimiter
from proxy.logs.sink import Sink, Tally
from proxy.logs.values import IsoTimes, safe_target
from proxy.pipeline import Exchange, Slot
from tests.unit.test_config import changed, error, parse

_ESCAPE = re.compile(r"\\x([0-9a-f]{2})")


def unescape(text: str) -> bytes:
    return _ESCAPE.sub(lambda m: chr(int(m[1], 16)), text).encode("latin-1")


@given(st.binary(max_size=200))
def test_a_target_is_shown_as_plain_ascii_losslessly(target: bytes) -> None:
    shown = safe_target(target)
    assert all(0x21 <= ord(c) < 0x7F and c not in '"' for c in shown)
    assert "\\" not in shown.replace("\\x", "")
    assert unescape(shown) == target


@given(st.text(max_size=100))
def test_quote_keeps_any_string_on_one_line_and_reversible(value: str) -> None:
    shown = quote(value)
    assert not any(c in shown for c in "\r\n\x00")
    if shown.startswith('"'):
        assert orjson.loads(shown) == value
    else:
        assert shown == value and " " not in shown and "=" not in shown


class _Rule:
    def __init__(self, id: str) -> None:
        self.id = id


class _Found:
    def __init__(self) -> None:
        self.used = [_Rule("sort-by")]
        self.exposed = [_Rule("user-role"), _Rule("sort-by")]


FOUND: Slot[Any] = Slot("found")


def access_record(client: str = "app", target: bytes = b"/users/1") -> AccessLine:
    """What the access log's step records for an exchange (through its ``done`` hook)."""
    ex = Exchange("GET", target, [], "10.0.0.1")
    ex.client_id, ex.release, ex.status, ex.outcome = client, "green", 502, "upstream_connect"
    ex.started, ex.bytes_in, ex.bytes_out = 100.0, 10, 456
    ex.slots = {FOUND: _Found()}
    records: list[Record] = []
    step = AccessLog(records.append, lambda: 100.0123, FOUND)
    step.wall = lambda: 1764640000.25
    step.done(ex)
    (record,) = records
    assert isinstance(record, AccessLine)
    return record


def log_record(msg: str, fields: dict[str, Any] | None = None) -> tuple[Any, ...]:
    event = "reload" if fields is not None else None
    return (LOG, 1764640000.0, "ERROR", "switchback", msg, event, fields, None)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@given(client=st.text(max_size=40), target=st.binary(max_size=60), msg=st.text(max_size=60))
def test_every_format_writes_exactly_one_line_per_record(
    fmt: str, client: str, target: bytes, msg: str
) -> None:
    for record in (access_record(client, target), log_record(msg, {"error": msg})):
        line = FORMATS[fmt].line(record).decode()
        assert line.endswith("\n") and "\n" not in line[:-1] and "\r" not in line


def test_json_lines_hold_every_access_field() -> None:
    got = orjson.loads(FORMATS["json"].line(access_record(target=b'/a"\n')))
    assert got == {
        "time": "2025-12-02T01:46:40.250Z",
        "type": "access",
        "peer": "10.0.0.1",
        "client": "app",
        "release": "green",
        "method": "GET",
        "target": "/a\\x22\\x0a",
        "status": 502,
        "duration_ms": 12.3,
        "bytes_in": 10,
        "bytes_out": 456,
        "deprecated": ["sort-by", "user-role"],
        "outcome": "upstream_connect",
    }


def test_logfmt_and_text_lines() -> None:
    assert FORMATS["logfmt"].line(access_record(client="a b")).decode() == (
        'time=2025-12-02T01:46:40.250Z type=access peer=10.0.0.1 client="a b" release=green '
        "method=GET target=/users/1 status=502 duration_ms=12.3 bytes_in=10 bytes_out=456 "
        "deprecated=sort-by,user-role outcome=upstream_connect\n"
    )
    assert FORMATS["text"].line(access_record()).decode() == (
        "2025-12-02T01:46:40.250Z access 10.0.0.1 app green GET /users/1 502 12.3ms in=10 "
        "out=456 deprecated=sort-by,user-role upstream_connect\n"
    )
    text = FORMATS["text"].line(log_record("a\nb", {"accepted": False})).decode()
    assert text == (
        "2025-12-02T01:46:40.000Z ERROR switchback: a\\nb [event=reload accepted=false]\n"
    )


@given(
    second=st.integers(min_value=0, max_value=4_000_000_000),
    ms=st.integers(min_value=0, max_value=999),
    within=st.floats(min_value=0.0001, max_value=0.0009),
)
def test_log_times_are_utc_iso_to_the_millisecond(second: int, ms: int, within: float) -> None:
    iso = IsoTimes()
    iso(second + 1.5)  # a second other than the one asked next: the cached text must not stay
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + f".{ms:03d}Z"
    assert iso(second + ms / 1000 + within) == expected
    assert calendar.timegm(time.strptime(expected[:19], "%Y-%m-%dT%H:%M:%S")) == second


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@given(
    kinds=st.lists(st.booleans(), max_size=12),
    client=st.text(max_size=20),
    target=st.binary(max_size=30),
)
def test_a_batch_is_its_records_lines_in_order(
    fmt: str, kinds: list[bool], client: str, target: bytes
) -> None:
    records: list[Record] = [
        access_record(f"{client}{i}", target) if access else log_record(f"{client}{i}", {"n": i})
        for i, access in enumerate(kinds)
    ]
    batch = FORMATS[fmt].lines(records)
    assert batch == b"".join(FORMATS[fmt].line(r) for r in records)
    if fmt == "json":
        shown = [orjson.loads(line) for line in batch.splitlines()]
        assert [line["client"] if "client" in line else line["msg"] for line in shown] == [
            f"{client}{i}" for i in range(len(kinds))
        ]
        assert [line["type"] == "access" for line in shown] == kinds


def test_a_record_that_cannot_be_shown_costs_only_its_own_line() -> None:
    read, write = os.pipe()
    try:
        sink = Sink(write, FORMATS["json"], 10, Tally(), close_fd=False)
        broken = (LOG, "not a time", "ERROR", "switchback", "x", None, None, None)
        for record in (access_record("a"), broken, access_record("b")):
            sink.put(record)
        sink.drain()
        lines = os.read(read, 65536).splitlines()
    finally:
        os.close(read)
        os.close(write)
    assert [orjson.loads(lines[0])["client"], orjson.loads(lines[2])["client"]] == ["a", "b"]
    assert lines[1].startswith(b"switchback: unprintable log record: ")
    assert (len(lines), sink.tally.written) == (3, 3)


async def test_json_access_lines_are_encoded_on_the_loop_in_batches() -> None:
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    json = FORMATS["json"]
    step = AccessLog(records.append, loop.time, FOUND, json.access_lines, loop.call_later)
    exchanges = []
    for i in range(access.BATCH + 3):
        ex = Exchange("GET", f"/users/{i}".encode(), [], "10.0.0.1")
        ex.started = loop.time()
        exchanges.append(ex)
        step.done(ex)
    # A full batch went at once; the three after it wait for the batch's interval.
    assert [type(r) for r in records] == [Encoded]
    deadline = loop.time() + 10 * access.INTERVAL
    while len(records) < 2 and loop.time() < deadline:
        await asyncio.sleep(access.INTERVAL / 5)
    first, rest = records
    assert isinstance(first, Encoded) and isinstance(rest, Encoded)
    assert (first.lines, rest.lines) == (access.BATCH, 3)
    shown = [orjson.loads(line) for r in (first, rest) for line in r.data.splitlines()]
    assert [line["target"] for line in shown] == [ex.target.decode() for ex in exchanges]
    step.done(exchanges[0])
    step.flush()  # what the runtime calls before the log stops: nothing waits for the timer
    last = records[-1]
    assert len(records) == 3 and isinstance(last, Encoded) and last.lines == 1
    assert orjson.loads(last.data)["target"] == "/users/0"


def test_a_full_buffer_drops_a_batch_whole_and_counts_its_lines() -> None:
    tally = Tally()
    sink = Sink(-1, FORMATS["json"], 10, tally, close_fd=False)
    sink.put(Encoded(8, b"x\n" * 8))
    sink.put(Encoded(5, b"x\n" * 5))  # 8 wait, under 10: taken (13 now wait)
    sink.put(Encoded(4, b"x\n" * 4))
    sink.put(log_record("y"))
    assert (len(sink.queue), tally.dropped) == (2, 5)


def test_refusals_are_logged_once_per_reason_per_period_and_the_rest_counted() -> None:
    limiter = RefusalLimiter(period=1.0)
    assert limiter.note("body_size", 10.0) == 0  # logged
    assert limiter.note("body_size", 10.1) is None  # counted
    assert limiter.note("head_size", 10.2) == 0  # another reason: its own line
    assert limiter.note("body_size", 10.5) is None
    assert limiter.due(10.9) == []  # not yet a period since the line
    assert limiter.note("body_size", 11.2) == 2  # the next line carries the count
    assert limiter.note("body_size", 11.3) is None
    assert limiter.due(12.3) == [("body_size", 1)]
    assert limiter.due(20.0) == []


def test_a_full_buffer_drops_and_counts() -> None:
    tally = Tally()
    sink = Sink(-1, FORMATS["json"], 3, tally, close_fd=False)
    for _ in range(5):
        sink.put(log_record("x"))
    assert (len(sink.queue), tally.dropped) == (3, 2)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("logging.format", "xml", "logging.format: 'xml' is not one of text, json, logfmt"),
        ("logging.level", "loud", "logging.level: 'loud' is not one of debug, info, warning"),
        ("logging.buffer", 0, "logging.buffer: 0 is not a line count in 1-10000000"),
        ("logging.file", " ", "logging.file: ' ' is empty"),
        ("logging.access", "maybe", "logging.access"),
    ],
)
def test_logging_config_errors_name_the_key_and_the_value(
    key: str, value: Any, message: str
) -> None:
    text = error(changed((key, value)))
    assert text.startswith("t.yaml: ") and message in text


def test_logging_defaults() -> None:
    logs = parse(changed()).logging
    assert (logs.format, logs.level, logs.access, logs.file) == ("text", "info", True, None)
