"""The YAML stage of the config loader (``proxy/config/yaml_loader.py``): what PyYAML cannot
build is reported at its key path, a key given twice is refused, nesting is bounded while the
text is read.

The config fuzzer (``test_config_fuzz.py``) found most of these cases; before their fix each was
another exception behind the "cannot check this config" catch-all, or a line naming no key.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy.config.load import parse_config
from proxy.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
SRC = "t.yaml"
DEV = (ROOT / "config" / "dev.yaml").read_text(encoding="utf-8")
ENV = {"TAG": "!!bool x"}


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, SRC, ENV)
    return str(info.value)


def dev(old: str, new: str) -> str:
    """config/dev.yaml with the first ``old`` written ``new``."""
    assert old in DEV
    return DEV.replace(old, new, 1)


def line_of(start: str) -> int:
    """The line of config/dev.yaml that starts with ``start``."""
    return DEV[: DEV.index(start)].count("\n") + 1


LISTEN = line_of("listen:")
BAD = {
    # dates that do not exist: "invalid YAML value: day is out of range for month", no key
    "no such day": (
        dev("deprecated: 2026-06-01", "deprecated: 2026-02-30"),
        "deprecations[0].deprecated: '2026-02-30' is not a date (expected YYYY-MM-DD or an ISO "
        "timestamp): day is out of range for month",
    ),
    "no year 0": (
        dev("sunset: 2027-01-01", "sunset: 0000-01-01"),
        "deprecations[0].sunset: '0000-01-01' is not a date (expected YYYY-MM-DD or an ISO "
        "timestamp): year 0 is out of range",
    ),
    "offset of a day": (
        dev("sunset: 2027-01-01", "sunset: 2027-01-01T10:00:00+25:00"),
        "deprecations[0].sunset: '2027-01-01T10:00:00+25:00' is not a date (expected YYYY-MM-DD "
        "or an ISO timestamp): the UTC offset is not within 24 hours",
    ),
    "!!timestamp word": (  # was "'NoneType' object has no attribute 'groupdict'"
        dev("deprecated: 2026-06-01", "deprecated: !!timestamp June"),
        "deprecations[0].deprecated: 'June' is not a date (expected YYYY-MM-DD or an ISO "
        "timestamp)",
    ),
    # tags PyYAML cannot build: the catch-all (IndexError, KeyError), or a line and column only
    "!!int empty": (
        dev("min_requests: 20", "min_requests: !!int ''"),
        "rollout.min_requests: '' is not an integer",
    ),
    "!!float empty": (
        dev("max_p99_ms: 500", "max_p99_ms: !!float ''"),
        "rollout.max_p99_ms: '' is not a number",
    ),
    "!!bool word": (
        dev("auto_promote: false", "auto_promote: !!bool x"),
        "rollout.auto_promote: 'x' is not true or false",
    ),
    "${VAR} retyped by a tag": (  # the catch-all (KeyError)
        dev("green: 10", "green: ${TAG}"),
        "traffic.weights.green: '!!bool x' is not a number",
    ),
    "unknown tag": (
        dev("listen: 127.0.0.1:8080", "listen: !foo 127.0.0.1:8080"),
        f"listen: has an unknown tag, !foo (line {LISTEN}, column 9)",
    ),
    "4301 digits": (  # str() of an int stops at 4300 digits
        dev("pool_size: 1024", "pool_size: " + "9" * 4301),
        f"upstream.pool_size: '{'9' * 76}... is not an integer: too many digits",
    ),
    "merge key in a !!pairs": (
        "a: !!pairs [{<<: {b: 1}}]\n",
        "a[0]['<<']: << (a merge key) cannot merge here (line 1, column 14)",
    ),
    # keys: a list as a key ("line 1, column 1: invalid YAML: found unhashable key")
    "list as key": ("[a]: 1\n", "top level: key ['a'] is not a string"),
    "list as key deeper": ("a:\n  b: {[c]: 1}\n", "a.b: key ['c'] is not a string"),
    # nesting past Python's stack: "nested too deeply" with no key
    "deep": ("a: " + "[" * 1000 + "]" * 1000 + "\n", "a[0]: nested too deeply"),
    "deep under null": ("~: " + "[" * 70 + "]" * 70 + "\n", "['~'][0]: nested too deeply"),
}


@pytest.mark.parametrize(("text", "line"), BAD.values(), ids=BAD.keys())
def test_bad_value_names_key(text: str, line: str) -> None:
    message = error(text)
    assert f"{SRC}: {line}" in message.split("\n"), message


def test_key_given_twice_is_an_error() -> None:
    text = DEV + "releases: {}\n"
    first, second = line_of("releases:"), DEV.count("\n") + 1
    assert error(text) == (
        f"{SRC}: releases: is given twice (lines {first} and {second}); give each key once"
    )


def test_key_given_twice_deeper_and_as_equal_numbers() -> None:
    lines = error("a:\n  b: 1\n  c: 2\n  b: 3\n").split("\n")
    assert f"{SRC}: a.b: is given twice (lines 2 and 4); give each key once" in lines
    lines = error("a: {1: x, 0x1: y}\n").split("\n")
    assert f"{SRC}: a.0x1: is given twice (lines 1 and 1); give each key once" in lines


def test_merge_keys_may_be_overridden() -> None:
    text = dev("  connect_timeout: 2.0\n", "  <<: {connect_timeout: 1, pool_size: 8}\n")
    cfg = parse_config(text, SRC, {})  # pool_size: 1024 follows, and wins
    assert (cfg.upstream.connect_timeout, cfg.upstream.pool_size) == (1, 1024)


def test_control_character_has_line_and_column() -> None:
    assert error("listen: 127.0.0.1:8080\nstate_dir: a\x01b\n") == (
        f"{SRC}: line 2, column 13: invalid YAML: unacceptable character #x0001: control "
        "characters must be escaped in double quotes"
    )
