"""A standalone Switchback loads neither the PostgreSQL driver nor the Redis client: about 18 MB
of memory per sidecar that only a fleet ledger (``telemetry.ledger``) or ``coordination:``
needs. Checked in a fresh interpreter, after importing what ``switchback run`` imports."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import proxy.app.runtime, proxy.app.serve, proxy.cli.commands
print(",".join(sorted({m.split(".")[0] for m in sys.modules} & {"psycopg", "redis"})))
"""


def test_switchback_run_imports_no_fleet_client() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


def test_the_fleet_modules_still_load_their_clients() -> None:
    """The other side of the test above: the modules that need them do import them."""
    script = "import sys, proxy.deprecation.ledger_pg, proxy.fleet.coordinator\n" + SCRIPT
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "psycopg,redis"
