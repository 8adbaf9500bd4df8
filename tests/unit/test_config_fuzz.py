"""Config fuzzing: whatever a file holds, ``parse_config`` gives a ``Config`` or a ``ConfigError``
that names the file and the key path (``helpers_config_oracle``), and no input hangs it.

The inputs (``helpers_config_fuzz``): YAML of any shape, a valid config changed at random, raw
text and bytes. Then one change at a known key (a wrong type, an unknown or missing key, a bad
value): the message must name that key. The defects the fuzzer found are plain tests in
``test_config.py`` and ``test_config_yaml.py``.

``make test`` runs a short pass of each property; ``make fuzz`` (``HYPOTHESIS_PROFILE=fuzz``,
see ``tests/conftest.py``) runs at least 10,000 examples of each.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import re
import typing
from types import UnionType
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.config.load import load_config
from proxy.errors import ConfigError
from proxy.schema import Config
from tests.unit import helpers_config_fuzz as gen
from tests.unit.helpers_config_oracle import (
    ABSENT,
    SRC,
    check_message,
    fields_of,
    outcome,
    strip_none,
    watchdog,
)

SHORT_RUN = 30  # examples of each property in make test: the module in a few seconds
FUZZING = os.environ.get("HYPOTHESIS_PROFILE") == "fuzz"  # make fuzz: the profile's count
FUZZ = settings(
    deadline=None,  # the oracle's watchdog catches hangs; a busy machine must not fail a run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    **({} if FUZZING else {"max_examples": SHORT_RUN}),
)

# -- any input ------------------------------------------------------------------------------------


@FUZZ
@given(gen.yaml_documents)
def test_any_yaml_document(text: str) -> None:
    outcome(text)


@FUZZ
@given(gen.raw_texts)
def test_any_text(text: str) -> None:
    outcome(text)


@FUZZ
@given(gen.mutated_configs())
def test_any_change_to_a_valid_config(case: tuple[str, list[str]]) -> None:
    outcome(case[0])


ENCODINGS = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1", "cp1252"])


@FUZZ
@given(
    st.sampled_from(gen.SHIPPED_TEXTS),
    ENCODINGS,
    st.lists(st.tuples(st.integers(0, 6000), st.binary(min_size=1, max_size=4)), max_size=3),
)
def test_any_file(
    tmp_path_factory: pytest.TempPathFactory, text: str, encoding: str, splices: list[Any]
) -> None:
    """load_config on bytes: UTF-8 with and without BOM, UTF-16, Latin-1, stray bytes."""
    data = text.replace("Deprecated", "Dépréciés").encode(encoding, "replace")
    for at, extra in splices:
        data = data[:at] + extra + data[at:]
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_bytes(data)
    try:
        with watchdog(repr(data)):
            load_config(path, gen.ENV)
    except ConfigError as exc:
        check_message(str(exc), data.decode("utf-8", "replace"), str(path))


# -- one change, at a known key: the message names that key ---------------------------------------

TYPED = [(p, t) for p, t in gen.typed_paths(gen.BASES[0]) if t is not Any]
NO_DOLLAR = gen.TEXT.filter(lambda s: "$" not in s)


def _wrong_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values ``tp`` never takes: each kind of the schema gets all the other kinds."""
    optional = isinstance(tp, UnionType) and type(None) in typing.get_args(tp)
    tp = strip_none(tp)
    origin = typing.get_origin(tp) or tp
    kinds: dict[Any, st.SearchStrategy[Any]] = {
        str: NO_DOLLAR, int: st.integers(-5, 5), float: st.floats(), bool: st.booleans(),
        list: st.lists(st.integers(), max_size=2), dict: st.dictionaries(gen.WORDS, st.none()),
        dt.datetime: st.dates(),
    }  # fmt: skip
    accepted = {origin, int} if origin is float else {origin}
    if isinstance(origin, type) and issubclass(origin, msgspec.Struct):
        accepted = {dict}
    if origin is dt.datetime:
        accepted |= {str, dt.datetime}
    wrong = [s for kind, s in kinds.items() if kind not in accepted]  # 1.0 is no int either
    return st.one_of(*wrong, *([] if optional else [st.none()]))


def _where(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in path).lstrip(".")


def _line_for(message: str, path: tuple[str | int, ...]) -> str | None:
    """The line of ``message`` about ``path`` (the schema's keys need no quoting)."""
    where = _where(path)
    return next((ln for ln in message.split("\n") if ln.startswith(f"{SRC}: {where}: ")), None)


def _changed(path: tuple[str | int, ...], value: Any) -> str:
    tree = copy.deepcopy(gen.BASES[0])
    gen.parent(tree, path)[path[-1]] = value
    return gen.render(tree)


@FUZZ
@given(st.data())
def test_a_wrong_type_is_named(data: st.DataObject) -> None:
    path, tp = data.draw(st.sampled_from(TYPED))
    value = data.draw(_wrong_type(tp))
    message = outcome(_changed(path, value))
    assert isinstance(message, str), f"accepted {value!r} at {path}"
    assert _line_for(message, path), message


STRUCTS = [(p, t) for p, t in TYPED if fields_of(t)]


@FUZZ
@given(st.sampled_from(STRUCTS), gen.WORDS, st.none() | st.integers() | NO_DOLLAR)
def test_an_unknown_key_is_named(
    at: tuple[tuple[str | int, ...], Any], key: str, value: Any
) -> None:
    path, tp = at
    if key in fields_of(tp):
        return
    tree = copy.deepcopy(gen.BASES[0])  # the full one: every struct is there
    gen.parent(tree, path)[path[-1]][key] = value
    message = outcome(gen.render(tree))
    assert isinstance(message, str)
    assert _line_for(message, (*path, key)), message


TYPES = {(): Config, **dict(TYPED)}
REQUIRED = [  # every key the schema requires, at every place the valid config has one
    p for p, _ in TYPED if isinstance(p[-1], str) and fields_of(TYPES[p[:-1]]).get(p[-1]) is ABSENT
]


@pytest.mark.parametrize("base", [0, 1], ids=["full", "short"])
@pytest.mark.parametrize("path", REQUIRED, ids=[_where(p) for p in REQUIRED])
def test_a_missing_required_key_is_named(path: tuple[str | int, ...], base: int) -> None:
    tree = copy.deepcopy(gen.BASES[base])
    del gen.parent(tree, path)[path[-1]]
    message = outcome(gen.render(tree))
    assert isinstance(message, str)
    assert f"{SRC}: {_where(path)}: is missing (required)" in message.split("\n"), message


# Values that are wrong for the key they are given to: each must be refused at that key.
NEGATIVE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.floats(max_value=-1.5, allow_nan=False),
    st.integers(max_value=-2),
)
HUGE_INTS = st.integers(2**63, 2**200) | st.sampled_from(
    [gen.Raw("0x" + "f" * 5000), gen.Raw("9" * 5000), gen.Raw("1" + ":59" * 3000)]
)  # written as text: Python's repr() refuses ints of more than 4300 digits
BAD_ADDRESSES = st.sampled_from(
    ["localhost", "127.0.0.1:http", "a b:80", "300.1.1.1:80", "::1:9901", "[::g]:9901", ":80",
     "h:", "[::1]", "", "h:1:2", "[::1]:", "h\u00e9:80", "a..b:80", "-a:80", "h:+80",
     "h:\u0668\u0660"]
) | st.builds("127.0.0.1:{}".format, st.integers(65536) | st.integers(max_value=-1))  # fmt: skip
BAD_URLS = st.sampled_from(
    ["http://[::1", "http://[::1]x:1", "http://a\uff03b:1", "http://h:1:2", "http://u@h:1",
     "http://h:-1", "http://:80", "http:///", "http://h:0", "ftp://h:1", "https://h:1",
     "http://h:1/v1", "http://h:1?a", "//h:1", "h:1", "", "http://a b:1", "http://h:65536",
     "http://\u0000:1"]
)  # fmt: skip
BAD_HEADERS = st.text(min_size=1, max_size=8).filter(
    lambda s: "$" not in s and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", s)
)
BAD_LINKS = st.sampled_from(["/changes", "ftp://x.org/a", "http://", "https://x.org/a b",
                             "http://x.org:99999/", "mailto:a@b", "http://[::1", ""])  # fmt: skip
BAD_DATES = st.sampled_from(
    ["2026-02-30", "2026-13-01", "2026-00-10", "0000-01-01", "2026-06-01T25:00:00Z",
     "2026-06-01T10:00:00+25:00", "2026-04-31", "2026-06-01 23:59:60", "!!timestamp x"]
).map(gen.Raw)  # fmt: skip


def _bad_values(path: tuple[str | int, ...], tp: Any) -> st.SearchStrategy[Any] | None:
    name = next(k for k in reversed(path) if isinstance(k, str))
    base = strip_none(tp)
    if base is int:
        return NEGATIVE | HUGE_INTS
    if base is float:
        return NEGATIVE
    if name == "listen":
        return BAD_ADDRESSES
    if name == "url":
        return BAD_URLS
    if name.endswith("_header"):
        return BAD_HEADERS
    if name in ("link", "sunset_link"):
        return BAD_LINKS
    if name in ("deprecated", "sunset"):
        return BAD_DATES
    return None


BAD = [(p, s) for p, t in TYPED if (s := _bad_values(p, t)) is not None]


@FUZZ
@given(st.data())
def test_a_bad_value_is_named(data: st.DataObject) -> None:
    path, values = data.draw(st.sampled_from(BAD))
    value = data.draw(values)
    message = outcome(_changed(path, value))
    assert isinstance(message, str), f"accepted {value!r} at {path}"
    assert _line_for(message, path), message
