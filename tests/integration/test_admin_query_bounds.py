"""Query values beyond what the admin API can serve are bad input (400 naming the key), not
an internal error: found by schemathesis (``test_admin_openapi.py``) against the live API."""

from __future__ import annotations

import pytest

from tests.integration.conftest import StartProxy
from tests.integration.test_status_page import DEPRECATIONS


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/deprecations?days=17812477404162214274516647936", "days"),
        ("/deprecations?days=36501", "days"),
        ("/journal?limit=9223372036854775809", "limit"),
        ("/shadow?limit=9223372036854775809", "limit"),
        ("/journal?since=nan", "since"),
        ("/journal?since=inf", "since"),
        ("/journal?since=1e400", "since"),
    ],
)
async def test_out_of_range_query_values_are_refused_by_name(
    switchback: StartProxy, path: str, key: str
) -> None:
    proxy = await switchback({"deprecations": DEPRECATIONS})
    status, body = await proxy.admin_call("GET", path)
    assert (status, body["code"]) == (400, "invalid_input"), body
    assert body["error"].startswith(f"{key}: ")


@pytest.mark.parametrize("path", ["/deprecations?days=36500", "/journal?limit=1000000"])
async def test_the_largest_values_still_work(switchback: StartProxy, path: str) -> None:
    proxy = await switchback({"deprecations": DEPRECATIONS})
    status, body = await proxy.admin_call("GET", path)
    assert status == 200, body
