"""The log's pure parts: escaping, the three formats, the refusal limiter, the config checks."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.logs.lines import ACCESS, FORMATTERS, LOG, quote, safe_target
from proxy.logs.refusals import RefusalLimiter
from proxy.logs.sink import Sink, Tally
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


def access_record(client: str = "app", target: bytes = b"/users/1") -> tuple[Any, ...]:
    return (ACCESS, 1764640000.25, "10.0.0.1", client, "green", "GET", target, 502, 0.0123,
            10, 456, _Found(), "upstream_connect")  # fmt: skip


def log_record(msg: str, fields: dict[str, Any] | None = None) -> tuple[Any, ...]:
    event = "reload" if fields is not None else None
    return (LOG, 1764640000.0, "ERROR", "switchback", msg, event, fields, None)


@pytest.mark.parametrize("fmt", sorted(FORMATTERS))
@given(client=st.text(max_size=40), target=st.binary(max_size=60), msg=st.text(max_size=60))
def test_every_format_writes_exactly_one_line_per_record(
    fmt: str, client: str, target: bytes, msg: str
) -> None:
    for record in (access_record(client, target), log_record(msg, {"error": msg})):
        line = FORMATTERS[fmt](record).decode()
        assert line.endswith("\n") and "\n" not in line[:-1] and "\r" not in line


def test_json_lines_hold_every_access_field() -> None:
    got = orjson.loads(FORMATTERS["json"](access_record(target=b'/a"\n')))
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
    assert FORMATTERS["logfmt"](access_record(client="a b")).decode() == (
        'time=2025-12-02T01:46:40.250Z type=access peer=10.0.0.1 client="a b" release=green '
        "method=GET target=/users/1 status=502 duration_ms=12.3 bytes_in=10 bytes_out=456 "
        "deprecated=sort-by,user-role outcome=upstream_connect\n"
    )
    assert FORMATTERS["text"](access_record()).decode() == (
        "2025-12-02T01:46:40.250Z access 10.0.0.1 app green GET /users/1 502 12.3ms in=10 "
        "out=456 deprecated=sort-by,user-role upstream_connect\n"
    )
    text = FORMATTERS["text"](log_record("a\nb", {"accepted": False})).decode()
    assert text == (
        "2025-12-02T01:46:40.000Z ERROR switchback: a\\nb [event=reload accepted=false]\n"
    )


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
    sink = Sink(-1, FORMATTERS["json"], 3, tally, close_fd=False)
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
