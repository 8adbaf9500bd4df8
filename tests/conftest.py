"""Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``: "default" (``make test``) or "fuzz"
(``make fuzz``: at least 10,000 examples of every property that does not set its own count).
``tests/unit/test_config_fuzz.py`` runs a short pass of its own under "default"."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("fuzz", max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# -- a real PostgreSQL server (tests/pgserver.py), for the fleet ledger's tests --

from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from tests.pgserver import PgServer, require_bin  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server for the session (skipped without its binaries)."""
    server = PgServer(require_bin())
    server.start()
    yield server
    server.remove()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return pg_server.create_database()
