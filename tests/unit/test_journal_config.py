"""The journal's config keys: defaults, and every bad value named by its key and value."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from proxy.config.load import parse_config
from proxy.errors import ConfigError

SRC = "config/test.yaml"
BASE: dict[str, Any] = {"releases": {"blue": {"url": "http://127.0.0.1:9001"},
                                     "green": {"url": "http://127.0.0.1:9002"}}}  # fmt: skip


def parse(journal: dict[str, Any], **more: Any) -> Any:
    raw = {**BASE, "journal": journal, **more}
    return parse_config(yaml.safe_dump(raw), SRC, {})


def test_defaults() -> None:
    cfg = parse({})
    j = cfg.journal
    assert (j.enabled, j.keep_credentials, j.max_body_bytes) == (True, False, 1024 * 1024)
    assert 0 < j.flush_seconds <= 1 and j.retention_days == 30


BAD = {
    "flush too slow": (
        {"flush_seconds": 5},
        "journal.flush_seconds: 5 is not a duration in (0, 1]",
    ),
    "flush zero": ({"flush_seconds": 0}, "journal.flush_seconds: 0 is not a duration in (0, 1]"),
    "negative cap": ({"max_body_bytes": -1}, "journal.max_body_bytes: -1 is negative"),
    "retention": ({"retention_days": 0}, "journal.retention_days: 0 is not positive"),
    "entries": ({"max_entries": 0}, "journal.max_entries: 0 is less than 1"),
    "queue": ({"queue_size": 0}, "journal.queue_size: 0 is less than 1"),
    "type": ({"keep_credentials": "maybe"}, "journal.keep_credentials"),
    "unknown key": ({"max_body": 5}, "max_body"),
}


@pytest.mark.parametrize(("journal", "line"), BAD.values(), ids=BAD.keys())
def test_bad_values_name_the_file_key_and_value(journal: dict[str, Any], line: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(journal)
    assert f"{SRC}: " in str(info.value) and line in str(info.value), str(info.value)
