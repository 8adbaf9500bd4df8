"""One deprecation's whole life, as a user walks through it (README: "The deprecation lifecycle,
step by step"): deprecated on a reload, announced in headers, watched in the report (one client
reads it, one declares a field list without it), browned out, switched off at the sunset with an
exempt late client, and finally removed once ``switchback report --fail-if-used`` lets CI pass.

The report and the gate are read through the real CLI (``python -m proxy report``) against the
live admin listener. Dates come from the current time. The month that must pass before the gate
opens is not waited for: the story's own ledger file is moved a month back, as a proxy that ran
every day since would have left it, and the proxy starts again on it.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from proxy.deprecation.ledger import Ledger
from tests.integration.conftest import (
    TOKEN,
    Proxy,
    Releases,
    StartProxy,
    run_switchback,
    sample,
)

DAY = 86_400.0
ROLE = "user-role"
LINK = "https://api.example.com/changes#user-role"
DECLARED = "user(id,name)"  # what the mobile app reads: not user.role


def stamp(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def deprecation(**kw: Any) -> dict[str, Any]:
    return {
        "id": ROLE,
        "field": "user.role",
        "on": "GET /users/{id}",
        "deprecated": "2026-01-01",
        "link": LINK,
        "replacement": "user.roles",
        **kw,
    }


async def reload_with(proxy: Proxy, deprecations: list[dict[str, Any]]) -> None:
    raw = yaml.safe_load(proxy.config_path.read_text())
    raw["deprecations"] = deprecations
    proxy.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    code, body = await proxy.admin_call("POST", "/reload")
    assert code == 200, body


async def get_user(
    proxy: Proxy, client: str, fields: str | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    headers = {"X-Client-Id": client, **({"X-Fields": fields} if fields else {})}
    async with (
        aiohttp.ClientSession() as s,
        s.get(proxy.url + "/users/1", headers=headers) as r,
    ):
        assert r.status == 200
        return dict(r.headers), orjson.loads(await r.read())


async def cli(proxy: Proxy, *args: str) -> tuple[int, str]:
    """``switchback <args> --admin <proxy's admin> --token ...`` as a child process."""
    proc = await run_switchback(*args, "--admin", proxy.admin, "--token", TOKEN)
    out, err = await proc.communicate()
    assert b"Traceback" not in err, err.decode()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def report(proxy: Proxy, *args: str) -> dict[str, Any]:
    code, out = await cli(proxy, "report", "--json", *args)
    assert code == 0, out
    return next(e for e in orjson.loads(out)["elements"] if e["id"] == ROLE)


def depends(element: dict[str, Any]) -> dict[str, bool]:
    return {c["client"]: c["depends"] for c in element["clients"]}


def a_month_later(state_dir: Path, days: int) -> None:
    """Moves everything the ledger holds ``days`` days back, then marks every day since as
    watched: the file a proxy that kept running (with no client touching them) would have."""
    path = state_dir / "ledger.sqlite3"
    shift = days * DAY
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE usage SET day = date(day, ?), first_seen = first_seen - ?,"
            " last_seen = last_seen - ?",
            (f"-{days} days", shift, shift),
        )
        db.execute("UPDATE watched SET day = day - ?", (days,))
        db.execute("UPDATE elements SET first_configured = first_configured - ?", (shift,))
        db.execute("UPDATE meta SET value = value - ? WHERE key = 'observing_since'", (shift,))
    db.close()


async def mark_watched(state_dir: Path, ids: list[str], days: int) -> None:
    now = time.time()
    ledger = Ledger(str(state_dir / "ledger.sqlite3"), retention_days=400, now=now)
    for back in range(days, -1, -1):
        ledger.watch(ids, now - back * DAY)
    await ledger.close()


async def test_a_deprecation_from_first_warning_to_removal(
    switchback: StartProxy, releases: Releases, tmp_path: Path
) -> None:
    # A rollout window longer than the story, so that it still holds every request of it.
    fields = {"mode": "declare", "header": "X-Fields"}
    proxy = await switchback({"fields": fields, "rollout": {"step_seconds": 600}})

    # Before: nothing is deprecated, nothing is announced.
    headers, body = await get_user(proxy, "web")
    assert "Deprecation" not in headers and body["user"]["role"] == "admin"

    # 1. Deprecate: the entry goes into the config, a reload applies it.
    await reload_with(proxy, [deprecation(sunset=stamp(dt.timedelta(days=60)))])

    # 2. Warn: every response that carries user.role says so.
    headers, body = await get_user(proxy, "web")
    assert headers["Deprecation"] == "@1767225600"  # 2026-01-01
    assert "Sunset" in headers and f'<{LINK}>; rel="deprecation"' in headers["Link"]
    assert body["user"]["role"] == "admin"  # still sent: nothing is enforced yet

    # 3. Watch: web reads it; mobile declares a field list that leaves it out.
    await get_user(proxy, "web")
    headers, _ = await get_user(proxy, "mobile", DECLARED)
    assert "Deprecation" in headers  # mobile is told as well: it received the field
    element = await report(proxy)
    assert element["verdict"] == "in use: 1 client"
    assert depends(element) == {"web": True, "mobile": False}
    mobile = next(c for c in element["clients"] if c["client"] == "mobile")
    assert (mobile["declares"], mobile["reads"], mobile["exposures"]) == ("yes", 0, 1)
    code, out = await cli(proxy, "report", "--fail-if-used", ROLE)
    assert code == 3 and "still used by a client" in out

    # 4. Brownout: a window over now; a late batch job is exempt.
    brownout = {"start": stamp(-dt.timedelta(minutes=5)), "end": stamp(dt.timedelta(hours=1))}
    upcoming = {"start": stamp(dt.timedelta(days=1)), "end": stamp(dt.timedelta(days=1, hours=1))}
    windows = [brownout, upcoming]
    sunset = stamp(dt.timedelta(days=60))
    await reload_with(proxy, [deprecation(sunset=sunset, exempt=["batch"], brownouts=windows)])
    headers, body = await get_user(proxy, "web")
    assert body == {"user": {"id": "1", "name": "user 1"}}  # removed for the window
    assert headers["Deprecation"] == "@1767225600" and "Sunset" in headers
    assert f'<{LINK}>; rel="deprecation"' in headers["Link"]
    _, body = await get_user(proxy, "batch")
    assert body["user"]["role"] == "admin"
    _, body = await get_user(proxy, "mobile", DECLARED)
    assert "role" not in body["user"]
    samples = await proxy.metrics()
    refused = "switchback_deprecated_refused_total"
    assert sample(samples, refused, element=ROLE, client="web", reason="brownout") == 1
    assert sample(samples, refused, element=ROLE, client="batch", reason="brownout") == 0
    code, out = await cli(proxy, "status")
    assert code == 0
    assert f"brownout now, until {brownout['end']}" in out, out
    assert f"{upcoming['start']} to {upcoming['end']}" in out, out
    # A removal is still an exposure: web depends on it; mobile's list still left it out.
    element = await report(proxy)
    assert depends(element) == {"web": True, "batch": True, "mobile": False}

    # 5. Sunset: enforced from the sunset on; batch stays exempt.
    await reload_with(
        proxy,
        [
            deprecation(
                sunset=stamp(-dt.timedelta(hours=1)), enforce="after_sunset", exempt=["batch"]
            )
        ],
    )
    seen_before = len(releases.blue.seen)
    _, body = await get_user(proxy, "web")
    assert "role" not in body["user"]
    _, body = await get_user(proxy, "batch")
    assert body["user"]["role"] == "admin"
    samples = await proxy.metrics()
    assert sample(samples, refused, element=ROLE, client="web", reason="sunset") == 1
    assert sample(samples, refused, element=ROLE, client="batch", reason="sunset") == 0
    # The app answered both (a field is removed from its answer): the rollout window counts
    # exactly what the release answered, with no error.
    assert len(releases.blue.seen) == seen_before + 2
    code, status = await proxy.admin_call("GET", "/status")
    blue = status["releases"]["blue"]
    assert code == 200 and blue["requests"] == len(releases.blue.seen)
    assert blue["error_rate"] == 0
    code, out = await cli(proxy, "report", "--fail-if-used", ROLE)
    assert code == 3

    # 6. Remove: web and batch move to user.roles; a month on, only mobile still calls.
    await proxy.runtime.stop()  # writes what the ledger holds
    state = tmp_path / "state"
    a_month_later(state, 31)
    await mark_watched(state, [ROLE], 31)
    later = await switchback(proxy_config(proxy), name="later.yaml")
    await get_user(later, "mobile", DECLARED)
    element = await report(later)
    assert element["verdict"] == "safe to remove", element
    assert depends(element) == {"mobile": False}
    code, out = await cli(later, "report", "--fail-if-used", ROLE)
    assert code == 0, out
    # Over a window reaching back to web's last use, the gate still holds.
    code, _ = await cli(later, "report", "--days", "40", "--fail-if-used", ROLE)
    assert code == 3


def proxy_config(proxy: Proxy) -> dict[str, Any]:
    """The running config's deprecations and fields, to start the next proxy with."""
    raw = yaml.safe_load(proxy.config_path.read_text())
    return {"deprecations": raw["deprecations"], "fields": raw["fields"]}
