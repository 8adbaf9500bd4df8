"""Found elements -> config entries: stable ids, dates, and the YAML text that lists them.

Ids are made from the operation and the element, never from their order, so importing the
same document again gives the same ids: ``get-pets-petid`` (the endpoint),
``get-pets-param-sort-by`` (the query parameter ``sort_by``), ``post-pets-request-owner-name``
(a request field), ``get-pets-petid-owner`` (a response field). Lower case, every run of other
characters one ``-``; the base path is left out, so ``--base-path`` does not change them. Two
elements that would share an id (``a.b`` and ``a_b``) get ``-2``, ``-3`` in sorted order.

Dates: ``x-deprecated-at`` or ``x-deprecation-date`` beside ``deprecated: true`` (or on the
schema a ``$ref`` names), else the date given; ``x-sunset`` is the sunset. A date is an ISO
date, an ISO timestamp (UTC when it names no zone) or an HTTP date (``Sunset``'s own format).
A value that is none of these is ignored with a note. A sunset before the deprecation date is
not allowed in a config (RFC 9745): when the deprecation date is the default it becomes the
sunset date, otherwise the sunset is dropped; both with a note.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from collections.abc import Mapping
from typing import Any

import yaml

from proxy.config.values import dotted
from proxy.openapi.convert import Element

DEPRECATED_KEYS = ("x-deprecated-at", "x-deprecation-date")
SUNSET_KEYS = ("x-sunset",)
_OTHER = re.compile(r"[^a-z0-9]+")
When = dt.date | dt.datetime


def entries(
    elements: list[Element], deprecated_on: dt.date, source: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The config entries for ``elements`` (in their order), and notes on dates ignored."""
    notes: list[str] = []
    out: list[dict[str, Any]] = []
    taken: dict[str, int] = {}
    for element in elements:
        ident = _unique(_ident(element), taken)
        entry: dict[str, Any] = {"id": ident, element.kind: element.value}
        if element.kind != "endpoint":
            entry["on"] = element.route
        at = f"{source}: {dotted(*element.where)}"
        given = _date(element.marks, DEPRECATED_KEYS, at, notes)
        sunset = _date(element.marks, SUNSET_KEYS, at, notes)
        deprecated: When = given if given is not None else deprecated_on
        if sunset is not None and _instant(sunset) < _instant(deprecated):
            if given is None:
                notes.append(f"{at}: x-sunset {_show(sunset)} is before {_show(deprecated)}: "
                             "the deprecation date is set to the sunset")  # fmt: skip
                deprecated = sunset
            else:
                notes.append(f"{at}: x-sunset {_show(sunset)} is before the deprecation date "
                             f"{_show(deprecated)}: sunset left out")  # fmt: skip
                sunset = None
        entry["deprecated"] = deprecated
        if sunset is not None:
            entry["sunset"] = sunset
        out.append(entry)
    return out, notes


def _ident(element: Element) -> str:
    operation = f"{element.method.lower()}-{slug(element.template) or 'root'}"
    if element.kind == "endpoint":
        return operation
    middle = {"param": "-param", "request_field": "-request", "field": ""}[element.kind]
    return f"{operation}{middle}-{slug(element.value) or 'elements'}"


def slug(text: str) -> str:
    return _OTHER.sub("-", text.lower()).strip("-")


def _unique(ident: str, taken: dict[str, int]) -> str:
    count = taken.get(ident, 0) + 1
    taken[ident] = count
    if count == 1:
        return ident
    candidate = f"{ident}-{count}"
    return candidate if candidate not in taken else _unique(candidate, taken)


def _date(
    marks: tuple[Mapping[str, Any], ...], keys: tuple[str, ...], at: str, notes: list[str]
) -> When | None:
    for mark in marks:
        for key in keys:
            if key in mark and mark[key] is not None:
                when = parse_when(mark[key])
                if when is None:
                    notes.append(f"{at}: {key} {mark[key]!r} is not a date: ignored")
                return when
    return None


def parse_when(value: Any) -> When | None:
    """A date or an aware UTC timestamp from what a document may write; None if neither."""
    if isinstance(value, dt.datetime):
        return _utc(value)
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return _utc(dt.datetime.fromisoformat(text))
    except ValueError:
        pass
    try:
        return _utc(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError, IndexError):
        return None


def _utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def _instant(value: When) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def _show(value: When) -> str:
    return value.isoformat()


class _Dumper(yaml.SafeDumper):
    """Block style, list items indented under their key, no aliases, and YAML 1.2 booleans as
    Switchback's loader reads them (so the key ``on`` is written plainly, not ``'on'``)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True


_BOOL = "tag:yaml.org,2002:bool"
_Dumper.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
_Dumper.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|false)$"), list("tf"))


def to_yaml(rules: list[dict[str, Any]], header: list[str]) -> str:
    """``# header`` lines, then ``deprecations:`` and the entries."""
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header)
    if not rules:
        return lines + "deprecations: []\n"
    body = yaml.dump(
        {"deprecations": rules},
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
    return lines + body
