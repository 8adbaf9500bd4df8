"""Hypothesis profiles, chosen by ``HYPOTHESIS_PROFILE``: "default" (``make test``) or "fuzz"
(``make fuzz``: at least 10,000 examples of every property that does not set its own count).
``tests/unit/test_config_fuzz.py`` runs a short pass of its own under "default"."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("fuzz", max_examples=10_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    """A compiled data plane older than a source would test code other than the checkout's:
    refused (``make native`` builds it again; proxy/http/native.py)."""
    if os.environ.get("SWITCHBACK_PURE_PYTHON"):
        return
    from tools import native

    if native.check() != 0:
        pytest.exit("the compiled data plane does not match the sources", returncode=4)


# -- a real PostgreSQL server (tests/pgserver.py), for the fleet ledger's tests --

from collections.abc import Iterator  # noqa: E402

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
