"""YAML text -> a plain tree (dicts, lists, scalars), or a ``ConfigError`` naming the key path.

PyYAML's SafeLoader, changed where a config needs it:

- Booleans are YAML 1.2's: only true/false. YAML 1.1 would read the deprecation key ``on:``
  (and ``yes``/``no``/``off``) as a boolean.
- A key given twice in one mapping is an error (YAML forbids it; PyYAML keeps the last one and
  drops the first without a word). Merge keys (``<<: *base``) may still be overridden.
- A value that YAML cannot build is reported at its key path with the text as written: a date
  that does not exist (``2026-02-30``), ``!!int x``, an unknown tag, a key that is a list.
- Nesting deeper than ``MAX_DEPTH`` stops while the text is read, before Python's stack would.

Only syntax errors are reported by line and column: there is no key path yet to name.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from proxy.config.values import dotted, show
from proxy.errors import ConfigError

MAX_DEPTH = 64
Key = str | int  # a mapping key, or a list index
_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
# What PyYAML's constructors raise besides ConstructorError: int("x"), date(2026, 2, 30), "".[0],
# bool_values["x"], a timestamp regex that did not match (None.groupdict), ...
_BUILD_ERRORS = (ValueError, TypeError, AttributeError, OverflowError, IndexError, KeyError)
_WANTED = {
    "int": "an integer", "float": "a number", "bool": "true or false",
    "timestamp": "a date (expected YYYY-MM-DD or an ISO timestamp)",
}  # fmt: skip


class _NodeError(Exception):
    """``node`` could not be built; ``problem`` says why, in the message's words."""

    def __init__(self, node: Node, problem: str) -> None:
        super().__init__(problem)
        self.node, self.problem = node, problem
        self.where = "top level"  # the key path, once the whole tree is known


class _TooDeep(Exception):
    def __init__(self, indexes: list[Any]) -> None:
        super().__init__("nested too deeply")
        self.path: list[Key] = []  # down to the first key that is not a scalar
        for index in indexes:
            if not isinstance(index, int | ScalarNode):
                break
            self.path.append(index if isinstance(index, int) else index.value)


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth: list[Any] = []  # compose_node's index for each open node

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth.append(index)
        try:
            if len(self._depth) > MAX_DEPTH + 1:  # the first entry is the document
                raise _TooDeep(self._depth[1:])
            return super().compose_node(parent, index)
        finally:
            self._depth.pop()

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):  # else PyYAML says what it expected
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # unhashable: a list or mapping as a key
                    raise _NodeError(node, f"key {show(key)} is not a string") from None
                if first is not key_node:
                    lines = f"lines {first.start_mark.line + 1} and {key_node.start_mark.line + 1}"
                    raise _NodeError(key_node, f"is given twice ({lines}); give each key once")
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), None)


def _attributed(build: Callable[[Any, Node], Any]) -> Callable[[Any, Node], Any]:
    """``build``, with its failures (also those of a collection's later steps) tied to the node."""

    def construct(loader: Any, node: Node) -> Any:
        try:
            data = build(loader, node)
        except (ConstructorError, *_BUILD_ERRORS) as exc:
            raise _NodeError(node, _problem(node, exc)) from None
        return _steps(data, node) if isinstance(data, types.GeneratorType) else data

    return construct


def _steps(steps: Iterator[Any], node: Node) -> Iterator[Any]:
    try:
        yield from steps
    except (ConstructorError, *_BUILD_ERRORS) as exc:
        raise _NodeError(node, _problem(node, exc)) from None


for _tag, _build in list(yaml.SafeLoader.yaml_constructors.items()):
    _Loader.add_constructor(_tag, _attributed(_build))


def _problem(node: Node, exc: Exception) -> str:
    if isinstance(exc, ConstructorError):
        mark = exc.problem_mark or node.start_mark
        where = f"(line {mark.line + 1}, column {mark.column + 1})"
        if node.tag == _MERGE:  # "<<" in a !!omap or !!pairs
            return f"{node.value} (a merge key) cannot merge here {where}"
        if (exc.problem or "").startswith("could not determine a constructor"):
            return f"has an unknown tag, {node.tag} {where}"
        return f"{exc.problem} {where}"
    kind = node.tag.rpartition(":")[2]
    wanted = _WANTED.get(kind, f"a valid !!{kind}")
    text = show(node.value) if isinstance(node, ScalarNode) else f"this {kind}"
    reason = " ".join(str(exc).split()).split("; ")[0] if isinstance(exc, ValueError) else ""
    if kind == "int" and "Exceeds the limit" in reason:
        reason = "too many digits"
    elif reason.startswith("offset must be"):
        reason = "the UTC offset is not within 24 hours"
    elif kind != "timestamp":
        reason = ""  # int("x") says no more than the message does
    return f"{text} is not {wanted}" + (f": {reason}" if reason else "")


def load_yaml(text: str, source: str) -> dict[Any, Any]:
    """The top-level mapping in ``text``; ``source`` names the file in messages."""
    try:
        raw = _load(text)
    except _NodeError as exc:
        raise ConfigError(f"{source}: {exc.where}: {exc.problem}") from None
    except _TooDeep as exc:
        raise ConfigError(f"{source}: {dotted(*exc.path[:2])}: nested too deeply") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(exc.problem or exc).split())
        raise ConfigError(f"{source}: {where}invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as exc:  # for text: the index of the character
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - text.rfind("\n", 0, exc.position)
        raise ConfigError(
            f"{source}: line {line}, column {column}: invalid YAML: unacceptable character "
            f"#x{exc.character:04x}: control characters must be escaped in double quotes"
        ) from None
    if not isinstance(raw, dict):
        what = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ConfigError(f"{source}: the top level is {what}, not a mapping of settings")
    return raw


def scalar_value(text: str) -> Any:
    """What ``text`` means as one YAML scalar (``25``: 25, ``true``: True); else ``text``."""
    try:
        value = _load(text)
    except (yaml.YAMLError, _NodeError, _TooDeep):
        return text
    return text if isinstance(value, dict | list) else value


def _load(text: str) -> Any:
    loader = _Loader(text)  # ReaderError here: the text is checked for printable characters
    root: Node | None = None
    try:
        root = loader.get_single_node()
        return None if root is None else loader.construct_document(root)
    except _NodeError as exc:
        exc.where = dotted(*_path_to(root, exc.node)) or "top level"
        raise
    finally:
        loader.dispose()


def _path_to(root: Node | None, target: Node) -> tuple[Key, ...]:
    """The key path of ``target`` in ``root``'s tree, first in document order. A key's path is
    itself; inside a list or mapping used as a key, the path of the mapping holding that key."""
    todo: list[tuple[Node, tuple[Key, ...], bool]] = [(root, (), False)] if root else []
    seen: set[int] = set()
    while todo:
        node, path, in_key = todo.pop()
        if node is target:
            return path
        if id(node) in seen:  # an alias: reached before
            continue
        seen.add(id(node))
        children: list[tuple[Node, tuple[Key, ...], bool]] = []
        if isinstance(node, MappingNode):
            for key, value in node.value:
                plain = isinstance(key, ScalarNode) and not in_key
                at = (*path, key.value) if plain else path
                children += [(key, at, in_key or not plain), (value, at, in_key)]
        elif isinstance(node, SequenceNode):
            children = [
                (item, path if in_key else (*path, i), in_key) for i, item in enumerate(node.value)
            ]
        todo += reversed(children)
    return ()
