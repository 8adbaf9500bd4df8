"""The coordination section: opt-in, and every bad value named by key and value, with the
Redis password never shown."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from proxy.config.load import parse_config
from proxy.core.redisurl import redacted
from proxy.errors import ConfigError

SRC = "config/test.yaml"
BASE: dict[str, Any] = {"releases": {"blue": {"url": "http://127.0.0.1:9001"},
                                     "green": {"url": "http://127.0.0.1:9002"}}}  # fmt: skip


def parse(coordination: Any) -> Any:
    return parse_config(yaml.safe_dump({**BASE, "coordination": coordination}), SRC, {})


def test_absent_means_standalone() -> None:
    cfg = parse_config(yaml.safe_dump(BASE), SRC, {})
    assert cfg.coordination is None


def test_defaults() -> None:
    c = parse({"redis": "redis://cache:6379/0"}).coordination
    assert (c.key, c.replica, c.lease_seconds, c.poll_seconds) == ("switchback", None, 3.0, 1.0)


BAD = {
    "scheme": ({"redis": "http://cache:6379"}, "coordination.redis: 'http://cache:6379' is not a"),
    "no host": (
        {"redis": "redis://:6379/0"},
        "coordination.redis: 'redis://:6379/0' names no host",
    ),
    "db": (
        {"redis": "redis://cache/zero"},
        "coordination.redis: 'redis://cache/zero' has a database",
    ),
    "key": ({"redis": "redis://c", "key": "a b"}, "coordination.key: 'a b' is not"),
    "empty key": ({"redis": "redis://c", "key": ""}, "coordination.key:"),
    "replica": ({"redis": "redis://c", "replica": "x/y"}, "coordination.replica: 'x/y' is not"),
    "lease": ({"redis": "redis://c", "lease_seconds": 0}, "coordination.lease_seconds: 0 is not"),
    "poll": ({"redis": "redis://c", "poll_seconds": 60}, "coordination.poll_seconds: 60 is not"),
    "unknown": ({"redis": "redis://c", "ttl": 3}, "ttl"),
    "missing url": ({"key": "k"}, "redis"),
}


@pytest.mark.parametrize(("section", "message"), BAD.values(), ids=BAD.keys())
def test_a_bad_value_is_named(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(section)
    assert SRC in str(err.value)
    assert message in str(err.value)


def test_the_password_is_never_shown() -> None:
    with pytest.raises(ConfigError) as err:
        parse({"redis": "redis://:s3cret@cache:6379/x"})
    assert "s3cret" not in str(err.value)
    assert "'redis://:(hidden)@cache:6379/x'" in str(err.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://:pw@cache:6379/0", "redis://:(hidden)@cache:6379/0"),
        ("rediss://user:pw@cache/1", "rediss://user:(hidden)@cache/1"),
        ("redis://:pw@[::1]:6379", "redis://:(hidden)@[::1]:6379"),
    ],
)
def test_redacted(url: str, shown: str) -> None:
    assert redacted(url) == shown
