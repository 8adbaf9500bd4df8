"""A Switchback with every feature configured (deprecations of each kind, sunset enforcement,
field selection, shadow traffic, the write journal) and traffic that touches each, so that its
/metrics carries every series it can export: for ``promtool check metrics`` and for checking
that the rules and the dashboard name only what Switchback exports."""

from __future__ import annotations

import datetime as dt
from typing import Any

import aiohttp

from tests.integration.conftest import Proxy

# The Switchback metric families that only appear once the traffic below has touched them.
TOUCHED = (
    "switchback_requests_total",
    "switchback_request_duration_seconds",
    "switchback_deprecated_total",
    "switchback_deprecated_last_seen_timestamp_seconds",
    "switchback_deprecated_refused_total",
    "switchback_shadow_diffs_total",
)


def every_feature_config() -> dict[str, Any]:
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    dates = {"deprecated": "2026-01-01", "link": "https://api.example.com/changes"}
    return {
        "traffic": {"weights": {"blue": 50, "green": 50}, "override_header": "X-Release"},
        "deprecations": [
            {"id": "user-role", "field": "user.role", "sunset": "2099-01-01", **dates},
            {"id": "sort-by", "param": "sort_by", **dates},
            {"id": "legacy", "request_field": "options.legacy", **dates},
            {
                "id": "users-v0",
                "endpoint": "GET /v0/users/{id}",
                "sunset": past,
                "enforce": "after_sunset",
                **dates,
            },
        ],
        "fields": {"mode": "declare"},
        "shadow": {"to": "green", "percent": 100, "noise_percent": 50},
        "journal": {"enabled": True},
        "telemetry": {"flush_seconds": 0.1},
    }


async def touch_every_feature(proxy: Proxy) -> None:
    """Requests through ``proxy`` that each feature counts: exposures, uses, declared reads,
    a sunset refusal, shadow copies (green adds user.roles: a difference), journaled writes."""
    async with aiohttp.ClientSession() as s:
        for i in range(4):
            client = {"X-Client-Id": f"client-{i}"}
            for release in ("blue", "green"):
                on = {**client, "X-Release": release}
                for target in ("/users/1?sort_by=name", "/v0/users/1", "/items"):
                    headers = {**on, "X-Fields": "user(id,role)"}
                    async with s.get(proxy.url + target, headers=headers) as r:
                        await r.read()
                body = {"options": {"legacy": True}}
                async with s.post(proxy.url + "/orders", json=body, headers=on) as r:
                    await r.read()
