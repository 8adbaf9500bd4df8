"""What a ``coordination:`` section must satisfy beyond its types (``proxy.config.checks``
calls it). Each problem is ``(key path, value, problem)``; the Redis URL is shown with its
password hidden, in this message as in every log line."""

from __future__ import annotations

import math
import re
from typing import Any

from proxy.core.redisurl import redacted, url_problem
from proxy.schema import Config

KEY = re.compile(r"[A-Za-z0-9_.:{}-]{1,100}")
Problem = tuple[str, Any, str]


def coordination_problems(cfg: Config) -> list[Problem]:
    c = cfg.coordination
    if c is None:
        return []
    out: list[Problem] = []
    problem = url_problem(c.redis)
    if problem is not None:
        out.append(("coordination.redis", redacted(c.redis), problem))
    if not KEY.fullmatch(c.key):
        out.append(("coordination.key", c.key, "is not 1-100 of A-Z a-z 0-9 _ . : { } -"))
    if c.replica is not None and not KEY.fullmatch(c.replica):
        out.append(("coordination.replica", c.replica, "is not 1-100 of A-Z a-z 0-9 _ . : { } -"))
    if not (math.isfinite(c.lease_seconds) and 0.3 <= c.lease_seconds <= 60):
        out.append(("coordination.lease_seconds", c.lease_seconds, "is not in [0.3, 60] seconds"))
    if not (math.isfinite(c.poll_seconds) and 0.05 <= c.poll_seconds <= 10):
        out.append(("coordination.poll_seconds", c.poll_seconds, "is not in [0.05, 10] seconds"))
    return out
