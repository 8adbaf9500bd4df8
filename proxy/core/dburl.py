"""``telemetry.ledger``: a PostgreSQL URL, checked, and shown without its password. Pure."""

from __future__ import annotations

import urllib.parse

SCHEMES = ("postgresql", "postgres")


def url_problem(url: str) -> str | None:
    """Why ``url`` is not a PostgreSQL URL the ledger can use, or None."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme not in SCHEMES:
        return "is not a postgresql:// URL (leave it out for the SQLite file in state_dir)"
    query = urllib.parse.parse_qs(parts.query)
    if not (parts.hostname or query.get("host")):
        return "names no host (postgresql://user@host:5432/db)"
    if not parts.path.strip("/") and not query.get("dbname"):
        return "names no database (postgresql://user@host:5432/db)"
    if port is not None and not 0 < port < 65536:
        return "has a port out of range"
    return None


def redacted(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: what logs and errors show."""
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.password is None and "password=" not in parts.query:
            return url
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:***@{host}"
        query = "&".join(
            f"{k}=***" if k == "password" else f"{k}={v}"
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        )
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "(a URL that cannot be shown)"
