"""A Redis URL as messages and logs may show it: the password replaced. Pure.

``redis://:secret@cache:6379/0`` reads ``redis://:(hidden)@cache:6379/0``; a URL without a
password is shown as written.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

HIDDEN = "(hidden)"
SCHEMES = ("redis", "rediss")


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``(hidden)``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{user}:{HIDDEN}@{host}" + (f":{port}" if port is not None else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def url_problem(url: str) -> str | None:
    """What makes ``url`` unusable as a Redis URL, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL (expected redis://host:6379/0)"
    if parts.scheme not in SCHEMES:
        return "is not a redis:// or rediss:// URL (expected redis://host:6379/0)"
    if not parts.hostname:
        return "names no host (expected redis://host:6379/0)"
    if port is not None and not 0 < port < 65536:
        return "has a port outside 1-65535"
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        return f"has a database {db!r} that is not a number (expected /0)"
    return None
