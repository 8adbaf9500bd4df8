"""Load a Switchback config file into a frozen ``Config``, or say everything that is wrong.

    text --yaml_loader--> plain tree --${VAR}--> substituted tree --dates--> UTC datetimes
         --msgspec--> typed Config (one type error at most) --config_checks--> all problems

Every failure is a ``ConfigError`` whose lines read ``<file>: <key.path>: <value> <problem>``
(YAML syntax errors: ``<file>: line L, column C: invalid YAML: <problem>``); no other exception
leaves ``parse_config``. Two choices worth knowing:

- YAML booleans are YAML 1.2's: only true/false (``proxy.config.yaml_loader``), and no key may be
  given twice.
- A scalar that is exactly one ``${VAR}`` takes the type its text has in YAML (``weight: ${W}``
  gives a number), except where the schema expects a string: a token ``0123`` stays a string.

``clients.api_key_secret``, when absent or null, is taken from ``SWITCHBACK_API_KEY_SECRET``
in ``env`` (``proxy.config.secrets``). No message shows the value of a secret key
(``config_checks.SECRETS``): a token or secret in a malformed or mistyped value stays hidden.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from proxy.config import checks as config_checks
from proxy.config import secrets as api_keys
from proxy.config.checks import SECRETS
from proxy.config.values import dotted, show
from proxy.config.yaml_loader import MAX_DEPTH, load_yaml, scalar_value
from proxy.core.routing import TrafficState
from proxy.errors import ConfigError
from proxy.schema import Config

MAX_NODES = 100_000  # values after expanding YAML aliases ("billion laughs")

Key = str | int  # a mapping key, or a list index
_REF = re.compile(r"\$(\$\{)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
_MSGSPEC = re.compile(r"(?P<problem>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?", re.S)
_STEP = re.compile(r"\.(\w+)|\[(\d+|\.\.\.)\]")
_WORDS = {
    "str": "a string", "int": "an integer", "float": "a number", "bool": "true or false",
    "array": "a list", "object": "a mapping", "null": "null",
    "datetime": "a date (YYYY-MM-DD) or timestamp",
}  # fmt: skip


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, substitute, convert and check the config at ``path`` (``env``: os.environ)."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: cannot read: not UTF-8 ({exc.reason})") from None
    return parse_config(text, source, os.environ if env is None else env)


def parse_config(text: str, source: str, env: Mapping[str, str]) -> Config:
    """The checked ``Config`` in ``text``; ``source`` names it in messages and ``Config.source``."""
    try:
        raw = load_yaml(text, source)
        raw = _Substitution(source, env).run(raw)
        _normalize_dates(raw)
        cfg = _convert(raw, source)
        cfg, problems = _api_key_secret_from_env(cfg, env)
        problems += config_checks.check(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # a bug here must still read as a config problem, not a traceback
        raise ConfigError(
            f"{source}: cannot check this config ({type(exc).__name__}: {exc})"
        ) from exc
    if problems:
        raise ConfigError("\n".join(f"{source}: {line}" for line in problems))
    return msgspec.structs.replace(cfg, source=source)


def initial_traffic(cfg: Config) -> TrafficState:
    """The traffic split a checked ``cfg`` starts with (candidate: the release not stable)."""
    stable = cfg.traffic.stable
    candidate = next(name for name in cfg.releases if name != stable)
    header = cfg.traffic.override_header
    return TrafficState(
        stable=stable,
        candidate=candidate,
        weights={name: float(weight) for name, weight in cfg.traffic.weights.items()},
        override_header=header.lower() if header is not None else None,
        pins={client: name for name, clients in cfg.traffic.pins.items() for client in clients},
    )


def _api_key_secret_from_env(cfg: Config, env: Mapping[str, str]) -> tuple[Config, list[str]]:
    """``cfg`` with the environment's API-key secret when the file sets none, and its problem."""
    value = env.get(api_keys.ENV_VAR)
    if cfg.clients.api_key_secret is not None or value is None:
        return cfg, []
    problem = api_keys.secret_problem(api_keys.secret_bytes(value))
    if problem is not None:
        return cfg, [f"{api_keys.ENV_VAR} (the environment's clients.api_key_secret): {problem}"]
    clients = msgspec.structs.replace(cfg.clients, api_key_secret=value)
    return msgspec.structs.replace(cfg, clients=clients), []


class _Substitution:
    """``${VAR}``, ``${VAR:-default}`` (unset or empty: default) and ``$${`` in string values.

    Copies the tree, so YAML aliases come out as separate copies: a cycle or more than
    ``MAX_NODES`` values is an error rather than a hang.
    """

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source, self.env = source, env
        self.problems: list[str] = []
        self.nodes = 0

    def run(self, raw: dict[Any, Any]) -> dict[Any, Any]:
        out = self._node(raw, Config, (), set())
        if self.problems:
            raise ConfigError("\n".join(self.problems))
        return typing.cast(dict[Any, Any], out)

    def _node(self, node: Any, tp: Any, path: tuple[Key, ...], active: set[int]) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(f"{self.source}: more than {MAX_NODES} values (after aliases)")
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"{self.source}: {dotted(*path[:2])}: nested too deeply")
        if isinstance(node, str):
            value = self._scalar(node, tp, path)
            if isinstance(value, str):
                self._check_text(value, path)
            return value
        if not isinstance(node, dict | list):
            return node
        if id(node) in active:
            raise ConfigError(f"{self.source}: {dotted(*path)}: a YAML alias refers to itself")
        active.add(id(node))
        if isinstance(node, dict):
            new: Any = {}
            for k, v in node.items():
                if isinstance(k, str):
                    self._check_text(k, (*path, k), "the key ")
                new[k] = self._node(v, _child_type(tp, k), (*path, _key(k)), active)
        else:
            new = [
                self._node(v, _child_type(tp, i), (*path, i), active) for i, v in enumerate(node)
            ]
        active.discard(id(node))
        return new

    def _scalar(self, text: str, tp: Any, path: tuple[Key, ...]) -> Any:
        if "$" not in text:
            return text
        whole = _REF.fullmatch(text)
        value = _REF.sub(lambda m: self._ref(m, text, path), text)
        if whole is None or whole.group(2) is None or _accepts_str(tp):
            return value
        return scalar_value(value)

    def _check_text(self, text: str, path: tuple[Key, ...], what: str = "") -> None:
        """Note a problem unless ``text`` is UTF-8 text, as msgspec and every encoder need."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, from a YAML escape or os.environ
            self.problems.append(
                f"{self.source}: {dotted(*path)}: {what}{show(text)} is not text: it has a lone "
                f"surrogate (U+{ord(text[exc.start]):04X})"
            )

    def _ref(self, m: re.Match[str], text: str, path: tuple[Key, ...]) -> str:
        escaped, name, default = m.groups()
        if escaped:
            return escaped
        where = f"{self.source}: {dotted(*path)}"
        if name is None:
            shown = api_keys.HIDDEN if dotted(*path) in SECRETS else show(text)
            self.problems.append(
                f"{where}: {shown} has a malformed ${{...}} (expected "
                "${NAME} or ${NAME:-default}; $${ is a literal ${)"
            )
            return m.group(0)
        value = self.env.get(name)
        if default is not None and not value:
            return default
        if value is None:
            self.problems.append(f"{where}: ${{{name}}} is not set")
            return m.group(0)
        return value


def _key(key: Any) -> str:
    """A mapping key in a key path: a string as it is, others in YAML words (``1``, ``null``)."""
    return key if isinstance(key, str) else show(key)


def _normalize_dates(raw: dict[Any, Any]) -> None:
    """``deprecations[*].deprecated``, ``.sunset`` and ``.brownouts[*].start`` and ``.end``:
    date, date string or datetime -> UTC."""
    deprecations = raw.get("deprecations")
    for item in deprecations if isinstance(deprecations, list) else ():
        for key in ("deprecated", "sunset") if isinstance(item, dict) else ():
            if key in item:
                item[key] = _as_utc(item[key])
        brownouts = item.get("brownouts") if isinstance(item, dict) else None
        for window in brownouts if isinstance(brownouts, list) else ():
            for key in ("start", "end") if isinstance(window, dict) else ():
                if key in window:
                    window[key] = _as_utc(window[key])


def _as_utc(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value  # reported by the conversion: not a date
    if isinstance(value, dt.datetime):
        try:
            return (
                value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
            )
        except OverflowError:  # year 1 or 9999 pushed across the edge by its offset
            return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    return value


# -- msgspec's one error, in our words ------------------------------------------------------------


def _convert(raw: dict[Any, Any], source: str) -> Config:
    if "source" in raw:  # set by the loader, never read from the file
        raise ConfigError(f"{source}: source: unknown key (known: {_known(Config)})")
    try:
        return msgspec.convert(raw, Config, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{source}: {_translate(str(exc), raw)}") from None


def _translate(message: str, raw: dict[Any, Any]) -> str:
    m = _MSGSPEC.fullmatch(message)
    if m is None:  # pragma: no cover - the pattern matches any text
        return message
    problem, node, tp = m["problem"], raw, Config
    path: list[Key] = []
    for step in _STEP.finditer(m["path"] or ""):
        name, index = step.groups()
        key: Key | None = name or (int(index) if index != "..." else _failing_key(node, tp))
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return f"{dotted(*path) or 'top level'}: {' '.join(problem.split())}"
        tp = _child_type(tp, key)
        path.append(key if isinstance(key, int) else str(key))
    where = dotted(*path)
    shown = api_keys.HIDDEN if where in SECRETS else show(node)
    if m["key"]:
        keys = node.keys() if isinstance(node, dict) else ()
        bad = next((k for k in keys if not isinstance(k, str)), None)
        return f"{where or 'top level'}: key {show(bad)} is not a string"
    if found := re.fullmatch(r"Object contains unknown field `(.*)`", problem, re.S):
        return f"{dotted(*path, found[1])}: unknown key (known: {_known(tp)})"
    if found := re.fullmatch(r"Object missing required field `(.*)`", problem, re.S):
        return f"{dotted(*path, found[1])}: is missing (required)"
    if found := re.fullmatch(r"Expected `([^`]*)`(?:, got `[^`]*`)?", problem):
        wanted = " or ".join(_WORDS.get(w, w) for w in found[1].split(" | "))
        return f"{where}: {shown} is not {wanted}"
    if problem.startswith("Invalid RFC3339"):
        return f"{where}: {shown} is not a date (expected YYYY-MM-DD or an ISO timestamp)"
    return f"{where}: {shown} is invalid ({' '.join(problem.split())})"


def _failing_key(node: Any, tp: Any) -> Any:
    """The first key of mapping ``node`` whose value does not convert (msgspec's ``[...]``)."""
    value_type = _child_type(tp, "")
    for key, value in node.items() if isinstance(node, dict) else ():
        try:
            msgspec.convert(value, value_type, strict=True)
        except msgspec.ValidationError:
            return key
    return None


# -- walking the schema's types alongside the data ------------------------------------------------


def _child_type(tp: Any, key: Any) -> Any:
    """The type of ``tp``'s field/item ``key``; ``Any`` when unknown."""
    tp = _strip_none(tp)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return _field_types(tp).get(key, Any) if isinstance(key, str) else Any
    args = typing.get_args(tp)
    if typing.get_origin(tp) is dict and isinstance(key, str):
        return args[1]
    if typing.get_origin(tp) is list and isinstance(key, int):
        return args[0]
    return Any


@functools.cache
def _field_types(struct: type[msgspec.Struct]) -> dict[str, Any]:
    return {f.encode_name: f.type for f in msgspec.structs.fields(struct)}


def _strip_none(tp: Any) -> Any:
    if isinstance(tp, types.UnionType):
        rest = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return rest[0] if len(rest) == 1 else tp
    return tp


def _accepts_str(tp: Any) -> bool:
    return tp is str or (isinstance(tp, types.UnionType) and str in typing.get_args(tp))


def _known(tp: Any) -> str:
    tp = _strip_none(tp)
    if not (isinstance(tp, type) and issubclass(tp, msgspec.Struct)):
        return "?"
    return ", ".join(name for name in _field_types(tp) if name != "source")
