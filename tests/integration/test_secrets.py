"""Secrets and exposure through the running proxy: API-key clients get keyed ids, neither the key
nor the secret leaks anywhere, and an admin listener beyond loopback guards the reads that name
clients while requests keep being served as before."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import (
    TOKEN,
    Proxy,
    ProxyProcess,
    Releases,
    StartProxy,
    header_values,
)
from tests.integration.releases import user_body

READ_TOKEN = "prometheus-read-token"
SECRET = "first-secret-0123456789abcdef"
NEW_SECRET = "second-secret-0123456789abcdef"
KEYS = ["sk_live_4f9a1c2e7b5d", "sk_live_0d3e8a5f61c9"]
ROLE = {"id": "user-role", "field": "user.role", "deprecated": "2026-06-01"}


def keyed_id(secret: str | bytes, key: str) -> str:
    secret = secret.encode() if isinstance(secret, str) else secret
    return "key:" + hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:16]


def extra(**clients: Any) -> dict[str, Any]:
    return {
        "admin": {"listen": "0.0.0.0:0", "token": TOKEN, "read_token": READ_TOKEN},
        "clients": {"id_header": None, "api_key_header": "X-Api-Key", **clients},
        "telemetry": {"flush_seconds": 0.1},
        "deprecations": [ROLE],
    }


async def get(url: str, token: str | None = None, **headers: str) -> tuple[int, Any, bytes]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, r.headers.copy(), await r.read()


def labelled(metrics: bytes) -> dict[str, float]:
    """``switchback_deprecated_total`` for user-role exposures, by client label."""
    out = {}
    for family in text_string_to_metric_families(metrics.decode()):
        for sample in family.samples:
            if sample.name == "switchback_deprecated_total":
                out[sample.labels["client"]] = sample.value
    return out


def ledger_clients(state: Path) -> dict[str, int]:
    with closing(sqlite3.connect(state / "ledger.sqlite3")) as db:
        rows = db.execute("SELECT client, SUM(count) FROM usage GROUP BY client").fetchall()
    return dict(rows)


async def wait_for_ledger(state: Path, expected: dict[str, int]) -> None:
    """Until the ledger, as another process reads it, holds ``expected`` (a flush is async)."""
    async with asyncio.timeout(10):
        while not (state / "ledger.sqlite3").exists() or ledger_clients(state) != expected:
            await asyncio.sleep(0.05)


async def serve_keys(proxy: Proxy, releases: Releases, keys: list[str]) -> None:
    """Each key's request through the proxy: answered as the app answers, the key sent on."""
    for key in keys:
        status, headers, body = await get(proxy.url + "/users/7", **{"X-Api-Key": key})
        assert status == 200
        assert orjson.loads(body) == user_body("blue", "7")  # what the client gets
        assert headers["X-Served-By"] == "blue"
        assert headers["Deprecation"] == "@1780272000"
        received = releases.blue.seen[-1]["headers"]
        assert header_values([(k.decode(), v.decode()) for k, v in received], "X-Api-Key") == [key]


async def test_api_key_clients_get_keyed_ids_and_the_key_and_secret_stay_hidden(
    switchback: StartProxy, releases: Releases, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = await switchback(extra(api_key_secret=SECRET))
    state = proxy.config_path.parent / "state"
    await serve_keys(proxy, releases, [KEYS[0], KEYS[1], KEYS[0], KEYS[0], KEYS[1]])

    ids = [keyed_id(SECRET, key) for key in KEYS]
    assert ids[0] != ids[1]
    plain = ["key:" + hashlib.sha256(key.encode()).hexdigest()[:16] for key in KEYS]
    status, _, metrics = await get(proxy.admin + "/metrics", READ_TOKEN)
    assert status == 200
    assert labelled(metrics) == {ids[0]: 3.0, ids[1]: 2.0}  # stable: one id per key
    status, _, report = await get(proxy.admin + "/deprecations", READ_TOKEN)
    assert status == 200
    (role,) = orjson.loads(report)["elements"]
    assert sorted(c["client"] for c in role["clients"]) == sorted(ids)
    status, _, status_body = await get(proxy.admin + "/status", TOKEN)
    assert status == 200
    await wait_for_ledger(state, {ids[0]: 3, ids[1]: 2})

    stored = b"".join(path.read_bytes() for path in state.iterdir() if path.is_file())
    for text in (metrics, report, status_body, stored, caplog.text.encode()):
        for secret in (*KEYS, SECRET):
            assert secret.encode() not in text
        for guess in plain:
            assert guess.encode() not in text
    assert not (state / "api-key-secret").exists()  # a configured secret is not written down


async def test_the_ids_change_with_the_secret_and_old_ledger_rows_stay(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(extra(api_key_secret=SECRET))
    state = proxy.config_path.parent / "state"
    await serve_keys(proxy, releases, [KEYS[0]])
    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["clients"]["api_key_secret"] = NEW_SECRET
    proxy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    status, answer = await proxy.admin_call("POST", "/reload")
    assert status == 200, answer
    await serve_keys(proxy, releases, [KEYS[0]])

    old, new = keyed_id(SECRET, KEYS[0]), keyed_id(NEW_SECRET, KEYS[0])
    assert old != new
    _, _, metrics = await get(proxy.admin + "/metrics", TOKEN)
    assert labelled(metrics) == {old: 1.0, new: 1.0}
    await wait_for_ledger(state, {old: 1, new: 1})


async def test_a_short_secret_on_reload_is_refused_and_the_old_ids_stay(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(extra(api_key_secret=SECRET))
    cfg = yaml.safe_load(proxy.config_path.read_text())
    cfg["clients"]["api_key_secret"] = "too-short"
    proxy.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    status, answer = await proxy.admin_call("POST", "/reload")
    assert status == 400
    assert answer["error"] == (
        f"{proxy.config_path}: clients.api_key_secret: (hidden) is too short (9 bytes): an "
        "API-key secret needs at least 16 bytes (e.g. the output of `openssl rand -hex 32`)"
    )
    await serve_keys(proxy, releases, [KEYS[1]])
    _, _, metrics = await get(proxy.admin + "/metrics", READ_TOKEN)
    assert labelled(metrics) == {keyed_id(SECRET, KEYS[1]): 1.0}


async def test_beyond_loopback_the_running_proxy_guards_its_reads(
    switchback: StartProxy, releases: Releases
) -> None:
    proxy = await switchback(extra(api_key_secret=SECRET))
    assert proxy.runtime.config.admin.listen == "0.0.0.0:0"
    await serve_keys(proxy, releases, [KEYS[0]])
    for path in ("/status", "/metrics", "/deprecations"):
        status, headers, body = await get(proxy.admin + path)
        assert (status, headers["WWW-Authenticate"]) == (401, "Bearer")
        assert b"key:" not in body
        assert (await get(proxy.admin + path, READ_TOKEN))[0] == 200
        assert (await get(proxy.admin + path, TOKEN))[0] == 200
    for path in ("/healthz", "/readyz"):
        assert (await get(proxy.admin + path))[0] == 200
    async with (
        aiohttp.ClientSession() as s,
        s.post(proxy.admin + "/rollback", headers={"Authorization": f"Bearer {READ_TOKEN}"}) as r,
    ):
        assert r.status == 403
    assert proxy.runtime.control.rollout.state != "rolled_back"
    await serve_keys(proxy, releases, [KEYS[0]])  # still serving


# -- as an operator runs it: the generated secret --


async def scrape(proxy: ProxyProcess) -> dict[str, float]:
    status, _, metrics = await get(proxy.admin + "/metrics")
    assert status == 200
    return labelled(metrics)


async def key_request(proxy: ProxyProcess, key: str) -> None:
    status, _, body = await get(proxy.url + "/users/7", **{"X-Api-Key": key})
    assert (status, orjson.loads(body)) == (200, user_body("blue", "7"))


async def test_without_a_configured_secret_one_is_generated_kept_and_reused(
    switchback_process: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWITCHBACK_API_KEY_SECRET", raising=False)
    settings = {
        "clients": {"id_header": None, "api_key_header": "X-Api-Key"},
        "deprecations": [ROLE],
    }
    first: ProxyProcess = await switchback_process(settings)
    await key_request(first, KEYS[0])
    path = tmp_path / "state" / "api-key-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_bytes()
    assert await scrape(first) == {keyed_id(secret, KEYS[0]): 1.0}
    log = "".join(first.log)
    assert f"the secret generated in {path}. Replicas of a fleet must share one" in log
    assert secret.decode() not in log and KEYS[0] not in log
    await first.stop()

    again: ProxyProcess = await switchback_process(settings)  # same state_dir
    await key_request(again, KEYS[0])
    assert path.read_bytes() == secret
    assert await scrape(again) == {keyed_id(secret, KEYS[0]): 1.0}
    await again.stop()

    monkeypatch.setenv("SWITCHBACK_API_KEY_SECRET", NEW_SECRET)
    from_env: ProxyProcess = await switchback_process(settings)
    await key_request(from_env, KEYS[0])
    assert await scrape(from_env) == {keyed_id(NEW_SECRET, KEYS[0]): 1.0}
    log = "".join(from_env.log)
    assert "Replicas of a fleet" not in log and NEW_SECRET not in log
