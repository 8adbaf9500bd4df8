"""What a ``shadow:`` section must satisfy beyond its types (``proxy.config.checks`` calls it).

Each problem is ``(key path, value, problem)``, as ``checks`` reports every other one.
Methods that are not safe (RFC 9110: anything but GET, HEAD, OPTIONS, TRACE) are copied only
because the config names them; the default is GET and HEAD.
"""

from __future__ import annotations

import math
import re
from typing import Any

from proxy.core.jsonpaths import parse_path
from proxy.schema import Config

METHOD = re.compile(r"[A-Z][A-Z-]*")
Problem = tuple[str, Any, str]


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _percent(v: float) -> bool:
    return math.isfinite(v) and 0 <= v <= 100


def shadow_problems(cfg: Config) -> list[Problem]:
    shadow = cfg.shadow
    out: list[Problem] = []
    if shadow is None:
        if cfg.rollout.require_clean_shadow:
            out.append(("rollout.require_clean_shadow", True, "needs a shadow: section"))
        return out
    if shadow.to not in cfg.releases:
        out.append(
            ("shadow.to", shadow.to, f"is not a release (releases: {', '.join(cfg.releases)})")
        )
    numbers = (
        ("shadow.percent", shadow.percent, _percent, "is not a percentage (0-100)"),
        ("shadow.noise_percent", shadow.noise_percent, _percent, "is not a percentage (0-100)"),
        ("shadow.timeout", shadow.timeout, _positive, "is not a positive timeout"),
        ("shadow.window", shadow.window, _positive, "is not a positive duration"),
        ("shadow.max_in_flight", shadow.max_in_flight, lambda v: v >= 1, "is less than 1"),
        ("shadow.max_routes", shadow.max_routes, lambda v: v >= 1, "is less than 1"),
    )
    for path, value, ok, problem in numbers:
        if not ok(value):
            out.append((path, value, problem))
    if not shadow.methods:
        out.append(("shadow.methods", shadow.methods, "is empty (e.g. [GET, HEAD])"))
    for i, method in enumerate(shadow.methods):
        if not METHOD.fullmatch(method):
            out.append(
                (f"shadow.methods[{i}]", method, "is not an HTTP method (upper case, like GET)")
            )
    for i, text in enumerate(shadow.ignore):
        try:
            parse_path(text)
        except ValueError as err:
            out.append((f"shadow.ignore[{i}]", text, f"is not a JSON path: {err}"))
    return out
