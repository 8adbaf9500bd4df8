"""How many requests a server says it answered, to check wrk's count against.

- nginx: ``stub_status`` on a listener of its own. Its ``requests`` counts every request the
  server read, the status request that reports it included.
- Switchback: the admin ``/metrics``, summing ``switchback_requests_total`` over releases and
  status codes (a response counts once it is sent).

Both are read outside the measured window: a scrape costs the server some CPU too. The same
stub_status page says whether nginx is still busy with requests (``busy``): a front that has
work left from the previous run when wrk stops sends it to the upstream after that run.
"""

from __future__ import annotations

import re
import urllib.request

_STUB = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\d+)\s*$", re.M)  # accepts handled requests
_ACTIVE = re.compile(r"Reading: (\d+) Writing: (\d+)")
_METRIC = re.compile(r"^switchback_requests_total(?:\{[^}]*\})?\s+(\S+)\s*$", re.M)


def parse_stub_status(text: str) -> int:
    """The ``requests`` figure of nginx's stub_status page."""
    found = _STUB.search(text)
    if found is None:
        raise ValueError(f"not a stub_status page: {text[:200]!r}")
    return int(found.group(3))


def parse_stub_busy(text: str) -> int:
    """Requests nginx is reading or answering, besides the status request itself."""
    found = _ACTIVE.search(text)
    if found is None:
        raise ValueError(f"not a stub_status page: {text[:200]!r}")
    return int(found.group(1)) + int(found.group(2)) - 1


def parse_switchback_metrics(text: str) -> int:
    """The sum of every ``switchback_requests_total`` series."""
    return round(sum(float(value) for value in _METRIC.findall(text)))


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return str(resp.read().decode())


def count(kind: str, url: str) -> int:
    """The figure the server at ``url`` (``kind``: "nginx" or "switchback") reports now."""
    text = fetch(url)
    return parse_stub_status(text) if kind == "nginx" else parse_switchback_metrics(text)


def between(kind: str, before: int, after: int) -> int:
    """Requests answered between two readings: nginx counts the second status request too."""
    return after - before - (1 if kind == "nginx" else 0)
