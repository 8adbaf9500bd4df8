"""The property the config fuzzer checks, for ``test_config_fuzz.py``.

``outcome(text)`` parses ``text`` under a watchdog and returns the ``Config`` or the message.
A message must read as the loader promises: every line starts with the file name and, unless it
is about the document as a whole (YAML syntax, the top level, too many values, an unreadable
file), names a key path that exists in the YAML (or in the schema's defaults under one) before
saying what is wrong; "is missing (required)" names a required key that is absent. The
catch-all "cannot check this config" must never fire. An accepted config holds only finite
numbers and loads again, unchanged, from its own dump.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import math
import re
import signal
import typing
from collections.abc import Iterator, Mapping
from types import FrameType, UnionType
from typing import Any

import msgspec
import yaml

from proxy.config.load import parse_config
from proxy.config.values import show
from proxy.errors import ConfigError
from proxy.schema import Config
from tests.unit.helpers_config_fuzz import ENV, dump

SRC = "fuzz.yaml"
HANG_SECONDS = 10  # a document takes milliseconds; this long means a loop that does not end

WHOLE_DOCUMENT = re.compile(
    r"line \d+, column \d+: invalid YAML: .+"
    r"|the top level is (?:empty|an? \w+), not a mapping of settings"
    r"|more than [\d,]+ values \(after aliases\)"
    r"|cannot read: .+"  # load_config only
)
_SEGMENT = r"""\[(?:\d+|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]"""
KEY_LINE = re.compile(
    rf"(?P<path>top level|(?:[\w-]+|{_SEGMENT})(?:\.[\w-]+|{_SEGMENT})*): (?P<rest>.+)", re.S
)
_STEP = re.compile(rf"(?:^|\.)([\w-]+)|({_SEGMENT})")
ABSENT = object()


class Hang(BaseException):  # not an Exception: nothing in the loader may catch it
    pass


@contextlib.contextmanager
def watchdog(what: str) -> Iterator[None]:
    def fire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no answer after {HANG_SECONDS} s for {what[:300]!r}")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(text: str, env: Mapping[str, str] = ENV) -> Config | str:
    """The Config in ``text``, or its error message after checking the message's form."""
    try:
        with watchdog(text):
            cfg = parse_config(text, SRC, env)
    except ConfigError as exc:
        check_message(str(exc), text, SRC)
        return str(exc)
    check_accepted(cfg)
    return cfg


def check_message(message: str, text: str, source: str) -> None:
    assert message, "an empty error message"
    document = _Document(text)
    for line in message.split("\n"):
        assert line.startswith(f"{source}: "), f"no file name: {line!r}\n{message}"
        rest = line[len(source) + 2 :]
        assert "cannot check this config" not in rest, f"the catch-all fired: {message}"
        if WHOLE_DOCUMENT.fullmatch(rest):
            assert "invalid YAML" not in rest or not document.parses(), f"it is YAML: {line!r}"
            continue
        found = KEY_LINE.fullmatch(rest)
        assert found, f"names no key path: {line!r}"
        path = key_path(found["path"])
        assert document.has(path, found["rest"]), f"no such key path in the file: {line!r}"


def key_path(text: str) -> tuple[str | int, ...]:
    """``deprecations[0].id`` -> ("deprecations", 0, "id"); ``releases['a b']`` -> (..., "a b")."""
    if text == "top level":
        return ()
    out: list[str | int] = []
    for m in _STEP.finditer(text):
        inner = m[2][1:-1] if m[2] else None
        out.append(m[1] if inner is None else int(inner) if inner.isdigit() else _literal(inner))
    return tuple(out)


def _literal(text: str) -> str:
    value = ast.literal_eval(text)
    assert isinstance(value, str)
    return value


class _Document:
    """``text`` composed (once, when a line names a key path) into YAML nodes."""

    def __init__(self, text: str) -> None:
        self.text, self.root, self.composed = text, None, False

    def parses(self) -> bool:
        """Whether PyYAML reads the text as one document (whatever the values in it)."""
        try:
            yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            return False
        except RecursionError:  # the loader stops nesting earlier, with a key path
            return True
        return True

    def has(self, path: tuple[str | int, ...], problem: str) -> bool:
        """Whether ``path`` names a key in the YAML, or a schema default under one."""
        if not self.composed:
            try:  # libyaml: ten times faster than the loader's own parser, the same nodes
                self.root = yaml.compose(self.text, Loader=yaml.CSafeLoader)
            except yaml.YAMLError:
                try:
                    self.root = yaml.compose(self.text, Loader=yaml.SafeLoader)
                except RecursionError:  # deeper than this stack allows: only the loader's limit
                    return problem == "nested too deeply"
            self.composed = True
        if problem == "is missing (required)":
            *parent, last = path
            at = _walk(self.root, Config, parent)
            return at is not None and _required(at[1], last) and _child(at[0], last) is None
        return _walk(self.root, Config, path) is not None


def _walk(node: Any, tp: Any, path: Any) -> tuple[Any, Any] | None:
    """(node or default value, type) at ``path``, or None when nothing is there."""
    for key in path:
        child = _child(node, key)
        if child is None:
            fields = fields_of(tp)
            if not isinstance(key, str) or key not in fields:
                return None
            child = fields[key]
        node, tp = child, _child_type(tp, key)
    return node, tp


def _child(node: Any, key: str | int, merging: frozenset[int] = frozenset()) -> Any:
    if isinstance(node, yaml.MappingNode) and id(node) not in merging:
        for k, v in node.value:
            if str(key) in _labels(k):
                return v
            if k.tag == "tag:yaml.org,2002:merge":  # <<: *base, or <<: [*a, *b]
                merged = v.value if isinstance(v, yaml.SequenceNode) else [v]
                inside = merging | {id(node)}
                found = next((c for m in merged if (c := _child(m, key, inside)) is not None), None)
                if found is not None:
                    return found
    elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
        return node.value[key] if key < len(node.value) else None
    elif isinstance(node, dict):  # a default value
        return node.get(key)
    elif isinstance(node, list) and isinstance(key, int):
        return node[key] if key < len(node) else None
    return None


def _labels(key: yaml.Node) -> set[str]:
    """How a message may name ``key``: as written, or its value in YAML words."""
    if not isinstance(key, yaml.ScalarNode):
        return set()
    try:
        value = yaml.SafeLoader("").construct_object(key, deep=True)
    except Exception:
        return {key.value}
    return {key.value, value if isinstance(value, str) else show(value)}


def fields_of(tp: Any) -> dict[str, Any]:
    """A struct type's fields with their defaults as plain values (ABSENT when required)."""
    tp = strip_none(tp)
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return {}
    out = {}
    for f in msgspec.structs.fields(tp):
        default = f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default
        out[f.encode_name] = ABSENT if default is msgspec.NODEFAULT else to_plain(default)
    return out


def _required(tp: Any, key: Any) -> bool:
    return fields_of(tp).get(key, None) is ABSENT


def _child_type(tp: Any, key: Any) -> Any:
    tp = strip_none(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return {f.encode_name: f.type for f in msgspec.structs.fields(tp)}.get(key, Any)
    args = typing.get_args(tp)
    return args[-1] if typing.get_origin(tp) in (dict, list) else Any


def strip_none(tp: Any) -> Any:
    if isinstance(tp, UnionType):
        rest = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def to_plain(value: Any) -> Any:
    return msgspec.to_builtins(value, builtin_types=(dt.datetime,))


def check_accepted(cfg: Config) -> None:
    """Only finite numbers; the config's own dump loads again into the same config."""
    tree = to_plain(cfg)
    del tree["source"]
    for number in _numbers(tree):
        assert math.isfinite(number), f"accepted a non-finite number: {tree}"
    text = dump(_escape(tree))
    try:
        again = parse_config(text, SRC, {})
    except ConfigError as exc:
        raise AssertionError(f"an accepted config does not load again:\n{text}\n{exc}") from None
    assert again == cfg


def _numbers(node: Any) -> Iterator[float]:
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            yield from _numbers(item)
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield node


def _escape(node: Any) -> Any:
    """Strings as literals again: ``${`` written ``$${``."""
    if isinstance(node, str):
        return node.replace("${", "$${")
    if isinstance(node, dict):
        return {_escape(k): _escape(v) for k, v in node.items()}
    return [_escape(v) for v in node] if isinstance(node, list) else node
