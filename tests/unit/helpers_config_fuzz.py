"""Hypothesis strategies that write config files for ``test_config_fuzz.py``.

Three families, because random trees rarely get past the top level:

- ``yaml_documents``: YAML text of any shape, written by a small emitter of our own so that it
  can hold what ``yaml.safe_dump`` never writes: tags, anchors and aliases, merge keys,
  duplicate and non-string keys, plain scalars of every YAML 1.1 type, dates that do not exist,
  huge numbers, control and surrogate characters, every ``${VAR}`` form.
- ``mutated_configs``: a valid config (``config/dev.yaml``, in full or with defaults left out)
  with one to three keys set to odd values, deleted, renamed or added.
- ``raw_texts``: a valid file cut short or spliced, and random bytes decoded.

``Raw(text)`` in a tree is written into the YAML text as it is (a plain token), so a mutated
config can hold ``2026-02-30`` or ``!!int x`` where a value would be.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml
from hypothesis import strategies as st

from proxy.config.load import load_config
from proxy.schema import Config

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TEXTS = [
    (ROOT / "config" / f"{n}.yaml").read_text() for n in ("dev", "staging", "production")
]
# ${VAR} values: plain, empty, retyped to odd YAML, a reference (not expanded again)
ENV = {
    "A": "7", "EMPTY": "", "WORD": "green", "HEX": "0x1f", "BADDATE": "2026-02-30",
    "LIST": "[1, 2]", "MAP": "{a: 1}", "REF": "${A}", "NAN": ".nan", "TAG": "!!bool x",
    "URL": "http://127.0.0.1:9002", "HUGE": "0x" + "f" * 5000, "SWITCHBACK_ADMIN_TOKEN": "t",
}  # fmt: skip


@dataclass(frozen=True)
class Raw:
    """A token written into the YAML text verbatim."""

    text: str


# -- scalars, as YAML text ------------------------------------------------------------------------

PLAINS = [
    "~", "null", "Null", "NULL", "true", "True", "FALSE", "yes", "No", "on", "off", "y", "n",
    ".inf", "-.Inf", ".nan", ".NaN", "0x1F", "0o17", "017", "0b101", "1_000", "190:20:30",
    "-1:30.5", "1e3", "1.0e+3", "-0", "+1", ".5", "0.", "1.5e-400", "1.0e+400", "2026-06-01",
    "0000-01-01", "9999-12-31", "2026-06-01T10:00:00Z", "2026-06-01 10:00:00.5 -5", "=",
    "http://127.0.0.1:9002", "https://h:1", "127.0.0.1:0", "[::1]:80", "0.0.0.0:9901",
    "GET /v0/users/{id}", "user.role", "items[].role", "X-Release", "blue", "green", "''", '""',
    "<<", "*a0", "*a1", "*nowhere", "&a0 1", "[a, b]", "{a: 1}", "[[]]", "? x", "- x", "|", ">",
    "!!int x", "!!int ''", "!!float ''", "!!float x", "!!bool x", "!!bool ''", "!!timestamp x",
    "!!timestamp 2026-02-30", "!!binary '@@'", "!!binary aGk=", "!!str 1", "!!null x",
    "!!set {a, b}", "!!omap [a]", "!!omap [{a: 1}, {a: 2}]", "!!pairs [1]", "!!map [1]",
    "!!seq {a: 1}", "!foo bar", "!!python/name:os.system x", "!<tag:yaml.org,2002:int> 12",
    "%", "@x", "`x", "# comment", "a #b", "a: b", "'unterminated", '"bad \\q escape"',
]  # fmt: skip
REF_NAMES = [*ENV, "UNSET", "lower", "_X1"]
REFS = st.one_of(
    st.builds("${{{}}}".format, st.sampled_from(REF_NAMES)),
    st.builds("${{{}:-{}}}".format, st.sampled_from(REF_NAMES), st.sampled_from(["", "3", "x}"])),
    st.sampled_from(["$${A}", "$$", "$", "${", "${}", "${1X}", "${A:x}", "${A", "$$${A}", "$${"]),
)
ENV_TEXT = st.builds(
    "{}{}{}".format, st.sampled_from(["", "x", "http://", "$"]), REFS, st.sampled_from(["", "y"])
)


def _date(y: int, m: int, d: int, time: str, zone: str, sep: str) -> str:
    return f"{y:04d}-{m:02d}-{d:02d}" + (f"{sep}{time}{zone}" if time else "")


DATES = st.builds(
    _date,
    st.sampled_from([0, 1, 1969, 2026, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["", "10:00:00", "25:00:00", "23:59:60", "00:61:00", "1:2:3", "10:00:00.5"]),
    st.sampled_from(["", "Z", "z", "+02:00", "-5", "+25:00", "-23:59", "+02:00:30"]),
    st.sampled_from(["T", "t", " ", "  "]),
)
HUGE = st.builds(
    "{}{}{}".format,
    st.sampled_from(["", "-", "0x", "1.", "1.0e+", "1"]),
    st.builds(str.__mul__, st.sampled_from(["9", "f", "0", ":59", "_"]), st.integers(1, 6000)),
    st.sampled_from(["", "0", "e+999"]),
)
TEXT = st.text(max_size=12)  # any code point: controls, surrogates, NUL
WORDS = st.from_regex(r"[a-z_][a-z0-9_-]{0,10}", fullmatch=True)


def _double_quoted(text: str) -> str:
    return json.dumps(text)  # JSON escapes are YAML's: "\u00e9", "\ud800", "\u0000"


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _number(value: int | float) -> str:
    return yaml.safe_dump(value).removesuffix("\n...\n").strip()


SCALAR_TOKENS = st.one_of(
    st.sampled_from(PLAINS),
    ENV_TEXT,
    DATES,
    DATES.map(_single_quoted),
    HUGE,
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(_number),
    TEXT.map(_double_quoted),
    TEXT.map(_single_quoted),
    TEXT,  # plain: often not YAML at all
    WORDS,
)


def _schema_keys() -> list[str]:
    """Every key the schema knows, and the release names."""
    names = {"blue", "green", "red"}
    todo: list[Any] = [Config]
    while todo:
        struct = todo.pop()
        for field in msgspec.structs.fields(struct):
            names.add(field.encode_name)
            for arg in [field.type, *getattr(field.type, "__args__", ())]:
                inner = [arg, *getattr(arg, "__args__", ())]
                todo += [t for t in inner if isinstance(t, type) and issubclass(t, msgspec.Struct)]
    return sorted(names)


SCHEMA_KEYS = _schema_keys()
KEY_TOKENS = st.one_of(
    st.sampled_from(SCHEMA_KEYS),
    st.sampled_from(["<<", "~", "1", "0x10", "true", "2026-01-01", "2026-02-30", "1.5", "[a]"]),
    st.sampled_from(["{a: 1}", "!!int x", "*a0", "'a b'", "'$${A}'", "${A}", "-", "? a"]),
    TEXT.map(_double_quoted),
    WORDS,
)

# -- trees, and an emitter for them ---------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A YAML collection: ``items`` are (key, value) pairs (a mapping) or values (a sequence)."""

    items: tuple[Any, ...]
    mapping: bool
    flow: bool
    prefix: str  # "", "&a0", "!!set", "&a1 !!omap", ...


PREFIXES = st.sampled_from(["", "", "", "", "&a0", "&a1", "!!set", "!!omap", "!!map", "!foo"])


def _collections(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Node]:
    pairs = st.lists(st.tuples(KEY_TOKENS, children), max_size=5).map(tuple)
    values = st.lists(children, max_size=5).map(tuple)
    return st.one_of(
        st.builds(Node, pairs, st.just(True), st.booleans(), PREFIXES),
        st.builds(Node, values, st.just(False), st.booleans(), PREFIXES),
    )


TREES = st.recursive(SCALAR_TOKENS, _collections, max_leaves=30)


def _inline(node: Any) -> str:
    if isinstance(node, str):
        return node
    if node.mapping:
        body = "{" + ", ".join(f"{k}: {_inline(v)}" for k, v in node.items) + "}"
    else:
        body = "[" + ", ".join(_inline(v) for v in node.items) + "]"
    return f"{node.prefix} {body}" if node.prefix else body


def _block(node: Node, indent: int) -> list[str]:
    pad, out = " " * indent, []
    for item in node.items:
        lead, value = (f"{pad}{item[0]}:", item[1]) if node.mapping else (f"{pad}-", item)
        if isinstance(value, str) or value.flow or not value.items:
            out.append(f"{lead} {_inline(value)}")
        else:
            out.append(f"{lead} {value.prefix}".rstrip())
            out += _block(value, indent + 2)
    return out


def emit(node: Any, head: str = "") -> str:
    """YAML text for ``node``: a scalar token or a ``Node``, block style unless it says flow."""
    if isinstance(node, str) or node.flow or not node.items:
        body = [_inline(node)]
    else:
        body = ([node.prefix] if node.prefix else []) + _block(node, 0)
    return head + "\n".join(body) + "\n"


HEADS = st.sampled_from(["", "", "", "---\n", "%YAML 1.1\n---\n", "%YAML 2.0\n---\n", "\ufeff"])
TAILS = st.sampled_from(["", "", "", "...\n", "---\nb: 1\n", "--- x\n", "# end"])
DOCUMENT_ROOTS = st.one_of(
    st.builds(
        Node,
        st.lists(st.tuples(KEY_TOKENS, TREES), max_size=8).map(tuple),
        st.just(True),
        st.booleans(),
        PREFIXES,
    ),
    TREES,
)
yaml_documents = st.builds(lambda h, n, t: emit(n, h) + t, HEADS, DOCUMENT_ROOTS, TAILS)

# -- a valid config, mutated ----------------------------------------------------------------------

_DEV = load_config(ROOT / "config" / "dev.yaml", {})
_FULL = msgspec.to_builtins(_DEV, builtin_types=(dt.datetime,))


def _short(struct: Any) -> Any:
    """``struct`` as plain values without the fields that hold their default."""
    if not isinstance(struct, msgspec.Struct):
        return msgspec.to_builtins(struct, builtin_types=(dt.datetime,))
    out = {}
    for f in msgspec.structs.fields(struct):
        value = getattr(struct, f.name)
        default = f.default_factory() if f.default_factory is not msgspec.NODEFAULT else f.default
        if value != default:
            out[f.encode_name] = (
                [_short(v) for v in value] if isinstance(value, list) else _short(value)
            )
    return out


BASES = [{k: v for k, v in base.items() if k != "source"} for base in (_FULL, _short(_DEV))]

Key = str | int
Path_ = tuple[Key, ...]


def paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every key path in ``node`` below the top: ("traffic",), ("traffic", "weights"), ..."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out += paths(child, (*prefix, i))
    return out


def parent(tree: Any, path: Path_) -> Any:
    node = tree
    for key in path[:-1]:
        node = node[key]
    return node


def dump(tree: Any, **options: Any) -> str:
    """``yaml.safe_dump``, by libyaml where it can (4 times faster: more examples a second)."""
    try:
        return yaml.dump(tree, Dumper=yaml.CSafeDumper, sort_keys=False, **options)
    except UnicodeEncodeError:  # libyaml cannot write a lone surrogate, even escaped
        return yaml.dump(tree, Dumper=yaml.SafeDumper, sort_keys=False, **options)


def render(tree: Any, flow: bool = False, unicode: bool = False) -> str:
    """``yaml.safe_dump`` of ``tree``, with each ``Raw`` written as its own text."""
    raws: dict[str, str] = {}

    def strip(node: Any) -> Any:
        if isinstance(node, Raw):
            raws[f"__raw{len(raws)}__"] = node.text
            return f"__raw{len(raws) - 1}__"
        if isinstance(node, dict):
            return {strip(k): strip(v) for k, v in node.items()}
        return [strip(v) for v in node] if isinstance(node, list) else node

    text = dump(strip(tree), default_flow_style=flow, allow_unicode=unicode, width=10**6)
    for placeholder, raw in raws.items():
        text = text.replace(placeholder, raw)
    return text


def typed_paths(tree: Any, tp: Any = Config, prefix: Path_ = ()) -> list[tuple[Path_, Any]]:
    """(path, schema type) for every key path in ``tree``, a config's plain values."""
    out: list[tuple[Path_, Any]] = [(prefix, tp)] if prefix else []
    inner = typing.get_args(tp) if isinstance(tp, types.UnionType) else ()
    base = next((t for t in inner if t is not type(None)), tp)
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        if tree is None:  # an optional section left out (``shadow: null``): nothing to vary
            return []
        fields = {f.encode_name: f.type for f in msgspec.structs.fields(base)}
        children = [(k, v, fields.get(k, Any)) for k, v in tree.items()]
    elif isinstance(tree, dict):
        children = [(k, v, typing.get_args(base)[1]) for k, v in tree.items()]
    elif isinstance(tree, list):
        children = [(i, v, typing.get_args(base)[0]) for i, v in enumerate(tree)]
    else:
        children = []
    for key, value, child_type in children:
        out += typed_paths(value, child_type, (*prefix, key))
    return out


PY_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**200), 2**200),
    st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**20]),
    st.floats(),
    TEXT,
    st.dates(),
    st.datetimes(timezones=st.none() | st.timezones() | st.just(dt.timezone(dt.timedelta(0, 968)))),
)
PY_VALUES = st.recursive(
    PY_SCALARS,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(WORDS | TEXT, kids, max_size=3),
    max_leaves=8,
)
# Values that are wrong for some key of the schema but look right for another.
DOMAIN = st.one_of(
    st.sampled_from(["localhost", "127.0.0.1:http", "127.0.0.1:65536", "a b:80", "300.1.1.1:80"]),
    st.sampled_from(["::1:9901", "[::g]:9901", "[::1]:0", "0.0.0.0:9901", ":80", "h:", "[::1]"]),
    st.sampled_from(["http://[::1", "http://[::1]x:1", "http://a\uff03b:1", "http://h:1:2"]),
    st.sampled_from(["http://u@h:1", "http://h:-1", "http://:80", "http:///", "http://h:0"]),
    st.sampled_from(["ftp://h:1", "https://h:1", "http://h:1/v1", "http://h:1?a", "//h:1"]),
    st.sampled_from(["https://ex.com/a b", "http://ex.com:99999/", "http://[", "mailto:x"]),
    st.builds("{}:{}".format, WORDS | TEXT, st.integers(-1, 70_000)),
    st.builds("http://{}:{}".format, WORDS | TEXT, st.integers(-1, 70_000)),
    st.sampled_from(["X Release", "X:Id", "", "X-\u00e9", "user..role", "a[", "GET v0", "GET"]),
    st.sampled_from(["/a/x{id}", "GET /a b", "* /x", "get /x", "GET /{a}/{a}", '"a', "*.*"]),
    st.floats(-200, 200) | st.sampled_from([89.995, 100.001, -0.0, 1e-9, 33.333]),
    st.lists(st.floats(-10, 150), max_size=4),
)
VALUES = st.one_of(PY_VALUES, DOMAIN, SCALAR_TOKENS.map(Raw), TREES.map(lambda t: Raw(_inline(t))))


@st.composite
def mutations(draw: st.DrawFn, tree: Any) -> str:
    """Change ``tree`` in place once; say what changed."""
    where = draw(st.sampled_from(paths(tree)))
    node, last = parent(tree, where), where[-1]
    kind = draw(st.sampled_from(["set", "set", "set", "delete", "add", "rename"]))
    if kind == "delete":
        del node[last]
    elif kind == "set" or not isinstance(node, dict):
        node[last] = draw(VALUES)
    else:
        new = draw(st.sampled_from(SCHEMA_KEYS) | WORDS | SCALAR_TOKENS.map(Raw))
        value = node[last] if kind == "rename" else draw(VALUES)
        if kind == "rename":
            del node[last]
        node[new] = value
    return f"{kind} {where}"


@st.composite
def mutated_configs(draw: st.DrawFn) -> tuple[str, list[str]]:
    """(YAML text, what was changed) for a valid config changed one to three times."""
    tree = copy.deepcopy(draw(st.sampled_from(BASES)))
    done = [draw(mutations(tree)) for _ in range(draw(st.integers(1, 3)))]
    return render(tree, draw(st.booleans()), draw(st.booleans())), done


# -- raw text -------------------------------------------------------------------------------------

_VALID_TEXTS = [*SHIPPED_TEXTS, render(BASES[0]), render(BASES[1], flow=True)]


@st.composite
def _spliced(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_VALID_TEXTS))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 40)))
        text = (
            text[:i]
            + draw(st.sampled_from(["", " ", "\n", "\t", ":", "- ", "  "]) | TEXT)
            + text[j:]
        )
    return text


raw_texts = st.one_of(
    st.builds(lambda t, n: t[:n], st.sampled_from(_VALID_TEXTS), st.integers(0, 5000)),
    _spliced(),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
)
