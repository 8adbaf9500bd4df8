"""The standard headers that tell a client it touched deprecated elements.

    Deprecation: @1780272000                      RFC 9745: a Structured Field Date (RFC 9651
                                                  section 3.3.7), the earliest deprecation
    Sunset: Fri, 01 Jan 2027 00:00:00 GMT         RFC 8594: an IMF-fixdate, the earliest sunset
    Link: <https://...>; rel="deprecation", <https://...>; rel="sunset"
    Warning: 299 - "deprecated: user.role (use user.roles), sort_by"     (optional, RFC 9111)

The app may have sent some of these itself: its own Deprecation or Sunset wins (a response has
exactly one of each), and a link the app already announced with the same relation is not repeated.
Links in config are validated by ``proxy.config.checks`` (absolute, printable, no whitespace).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import formatdate
from functools import lru_cache

from proxy.core.rules import Rule

Header = tuple[bytes, bytes]

_OURS = frozenset((b"deprecation", b"sunset", b"link"))  # the app may have sent these itself

# One link-value: <uri> then its parameters, up to a comma outside quotes (RFC 8288 section 3).
_LINK_VALUE = re.compile(r'<([^>]*)>((?:[^,"<]|"(?:[^"\\]|\\.)*")*)')
_PARAM = re.compile(r'\s*;\s*([^\s=;,"]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;,"]*)))?')
_NOT_QDTEXT = re.compile(r'["\\]|[^\t\x20-\x7e\x80-\U0010ffff]')  # escape, or drop a CTL


def deprecation_headers(
    rules: Sequence[Rule], existing: Sequence[Header], warning: bool
) -> list[Header]:
    """The headers to add to a response that involved ``rules`` (in rule order).

    ``existing`` are the response's headers as the app sent them; ``warning`` adds the optional
    Warning header naming the elements (and their replacements).
    """
    if not rules:
        return []
    own = [(lower, value) for name, value in existing if (lower := name.lower()) in _OURS]
    if not own:  # the usual case: the same rules give the same headers
        return list(_cached(tuple(rules), warning))
    return _headers(rules, own, warning)


def _headers(rules: Sequence[Rule], own: list[Header], warning: bool) -> list[Header]:
    """``own``: the app's Deprecation, Sunset and Link headers (lower-case names)."""
    out: list[Header] = []
    if all(name != b"deprecation" for name, _ in own):
        out.append((b"Deprecation", b"@%d" % min(r.deprecated_at for r in rules)))
    sunsets = [r.sunset_at for r in rules if r.sunset_at is not None]
    if sunsets and all(name != b"sunset" for name, _ in own):
        out.append((b"Sunset", imf_fixdate(min(sunsets))))
    link = _link_header(rules, [value for name, value in own if name == b"link"])
    if link:
        out.append((b"Link", link))
    if warning:
        out.append((b"Warning", _warning(rules)))
    return out


@lru_cache(maxsize=256)  # keyed by rule identities (cheap to hash); a past config's age out
def _cached(rules: tuple[Rule, ...], warning: bool) -> tuple[Header, ...]:
    return tuple(_headers(rules, [], warning))


def headers_for(rules: tuple[Rule, ...], warning: bool) -> tuple[Header, ...]:
    """The headers for ``rules`` when the app sent none of Deprecation, Sunset or Link (the
    caller knows): computed once per set of rules, then the same tuple."""
    return _cached(rules, warning)


@lru_cache(maxsize=64)
def imf_fixdate(unix: int) -> bytes:
    """``Sun, 06 Nov 1994 08:49:37 GMT`` in English whatever the locale (RFC 9110 5.6.7)."""
    return formatdate(unix, usegmt=True).encode("ascii")


def _link_header(rules: Sequence[Rule], app_links: list[bytes]) -> bytes:
    wanted = dict.fromkeys(
        [(r.link, "deprecation") for r in rules if r.link]
        + [(r.sunset_link, "sunset") for r in rules if r.sunset_link]
    )
    if not wanted:
        return b""
    present = _link_pairs(app_links) if app_links else set()
    values = [f'<{url}>; rel="{rel}"' for url, rel in wanted if (url, rel) not in present]
    return ", ".join(values).encode("utf-8")


def _link_pairs(values: list[bytes]) -> set[tuple[str, str]]:
    """The (target, relation) pairs of Link header values; ``rel`` may list several types."""
    pairs: set[tuple[str, str]] = set()
    for value in values:
        for link in _LINK_VALUE.finditer(value.decode("latin-1")):
            params = link.group(2)
            pos = 0
            while m := _PARAM.match(params, pos):  # in order: only the first rel counts
                if m.group(1).lower() == "rel":
                    types = m.group(2) if m.group(2) is not None else m.group(3) or ""
                    pairs.update((link.group(1), t.lower()) for t in types.split())
                    break
                pos = m.end()
    return pairs


def _warning(rules: Sequence[Rule]) -> bytes:
    names = dict.fromkeys(
        f"{r.element} (use {r.replacement})" if r.replacement else r.element for r in rules
    )
    text = "deprecated: " + ", ".join(names)
    return f'299 - "{_NOT_QDTEXT.sub(_quote, text)}"'.encode("utf-8", "replace")


def _quote(m: re.Match[str]) -> str:
    c = m.group()
    return "\\" + c if c in '"\\' else ""
