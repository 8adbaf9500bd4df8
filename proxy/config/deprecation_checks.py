"""What the ``deprecations:`` entries must satisfy beyond their types (``proxy.config.checks``
calls it): unique ids, exactly one kind, paths and routes that parse, a sunset not before the
deprecation, absolute links, and enforcement that has what it needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from proxy.config.values import show
from proxy.schema import DeprecationConfig

Problem = tuple[str, Any, str]


class _Problems(list[Problem]):
    def add(self, path: str, value: Any, problem: str) -> None:
        self.append((path, value, problem))


def deprecation_problems(deprecations: list[DeprecationConfig]) -> list[Problem]:
    """Every problem of the ``deprecations:`` entries, as ``(key path, value, problem)``."""
    out = _Problems()
    if not deprecations:
        return out
    from proxy.core.jsonpaths import parse_path
    from proxy.core.rules import KINDS, parse_route  # imported when needed

    first: dict[str, int] = {}
    for i, dep in enumerate(deprecations):
        at = f"deprecations[{i}]"
        if not dep.id.strip():
            out.add(f"{at}.id", dep.id, "is empty")
        elif dep.id in first:
            out.add(f"{at}.id", dep.id, f"is a duplicate of deprecations[{first[dep.id]}].id")
        first.setdefault(dep.id, i)
        kinds = [kind for kind in KINDS if getattr(dep, kind) is not None]
        if len(kinds) != 1:
            which = " and ".join(kinds) if kinds else "none"
            out.add(at, dep.id, f"sets {which}; set exactly one of {', '.join(KINDS)}")
        if dep.endpoint is not None and dep.on is not None:
            out.add(f"{at}.on", dep.on, "is not allowed beside endpoint, which names its route")
        checks: tuple[tuple[str, Callable[[str], object], str], ...] = (
            ("field", parse_path, "is not a JSON path"),
            ("request_field", parse_path, "is not a JSON path"),
            ("endpoint", parse_route, 'is not a route ("METHOD /path" or "/path")'),
            ("on", parse_route, 'is not a route ("METHOD /path" or "/path")'),
        )
        for key, parse, problem in checks:
            text = getattr(dep, key)
            if text is not None:
                try:
                    parse(text)
                except ValueError as exc:
                    out.add(f"{at}.{key}", text, f"{problem}: {exc}")
        if dep.endpoint is not None and not dep.endpoint.strip().startswith(("/", "*")):
            if " " not in dep.endpoint.strip():
                out.add(f"{at}.endpoint", dep.endpoint, 'has no path (expected "METHOD /path")')
        if dep.param is not None and not dep.param:
            out.add(f"{at}.param", dep.param, "is empty")
        if dep.sunset is not None and dep.sunset < dep.deprecated:
            out.add(
                f"{at}.sunset",
                dep.sunset,
                f"is earlier than deprecated ({show(dep.deprecated)})"
                "; RFC 9745 section 4 and RFC 8594 forbid a sunset before the deprecation",
            )
        for key in ("link", "sunset_link"):
            link = getattr(dep, key)
            if link is not None and not _is_absolute_http(link):
                out.add(f"{at}.{key}", link, "is not an absolute http(s) URL")
        _check_enforcement(out, at, dep)
    return out


def _check_enforcement(out: _Problems, at: str, dep: DeprecationConfig) -> None:
    from proxy.core.enforcement import brownout_problems  # imported when needed

    if dep.enforce == "after_sunset" and dep.sunset is None:
        out.add(f"{at}.enforce", dep.enforce, "needs a sunset (deprecations[].sunset)")
    for j, window in enumerate(dep.brownouts):
        for key, value, problem in brownout_problems(window):
            out.add(f"{at}.brownouts[{j}].{key}", value, problem)
    for j, client in enumerate(dep.exempt):
        if not client.strip():
            out.add(f"{at}.exempt[{j}]", client, "is empty (a client id)")


def _is_absolute_http(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    printable = url.isprintable() and not any(c.isspace() for c in url)
    return printable and parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
