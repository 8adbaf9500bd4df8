"""The operator's part of the soak: weights, a rollout, a rollback, weights again, a promotion,
a config reload and weights once more, through the admin API while the clients run.

Each action is sent at its fraction of the run and checked on its answer. Two stretches of the
run have a split the data plane must honour exactly, failures or not: from the rollback's
answer until the next weights are sent, only blue serves (green is out of service); from the
promotion's answer until the last weights are sent, only green does (it is stable at 100%).
A request counts for a stretch when it was sent and answered within it: a pipelined request
is routed only when the one before it has been answered, which may be after it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.integration.conftest import admin_request
from tests.integration.helpers_rollout import edit_config

Check = Callable[[dict[str, Any]], bool]


@dataclass
class Action:
    at: float  # fraction of the run
    name: str
    method: str
    path: str
    body: Any
    check: Check
    sent: float = 0.0  # the event loop's clock
    acked: float = 0.0
    status: int = 0
    answer: Any = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and isinstance(self.answer, dict) and self.check(self.answer)


def _weights(**want: float) -> Check:
    return lambda a: a.get("weights") == want


def actions() -> list[Action]:
    return [
        Action(0.10, "weights green 30", "PUT", "/traffic", {"weights": {"green": 30}},
               _weights(blue=70.0, green=30.0)),
        # The rollout never judges (too few requests for its min_requests) nor steps (an hour
        # per step): what it does under faults is not the question, its moves are.
        Action(0.22, "rollout start", "POST", "/rollout",
               {"steps": [50, 100], "step_seconds": 3600, "min_requests": 1_000_000},
               lambda a: a["rollout"]["state"] == "ramping" and a["weights"]["green"] == 50.0),
        Action(0.34, "rollback", "POST", "/rollback", {"reason": "soak"},
               lambda a: a["weights"]["green"] == 0.0 and a["out_of_service"] == "green"),
        Action(0.46, "weights green 60", "PUT", "/traffic", {"weights": {"green": 60}},
               lambda a: _weights(blue=40.0, green=60.0)(a) and a["out_of_service"] is None),
        Action(0.58, "promote", "POST", "/promote", None,
               lambda a: a["stable"] == "green" and a["weights"]["green"] == 100.0),
        Action(0.70, "reload", "POST", "/reload", None,
               lambda a: "reloaded" in a and a["stable"] == "green"),
        Action(0.82, "weights blue 25", "PUT", "/traffic", {"weights": {"blue": 25}},
               _weights(green=75.0, blue=25.0)),
    ]  # fmt: skip


async def run(admin: str, config_path: Path, seconds: float, plan: list[Action]) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    for action in plan:
        await asyncio.sleep(max(0.0, start + action.at * seconds - loop.time()))
        if action.name == "reload":  # a harmless change: two client ids get their own label
            edit_config(config_path, {"clients": {"known": ["user-0", "user-1"]}})
        action.sent = loop.time()
        try:
            async with asyncio.timeout(30):
                action.status, action.answer = await admin_request(
                    admin, action.method, action.path, action.body
                )
        except (TimeoutError, aiohttp.ClientError) as exc:
            action.answer = repr(exc)
        action.acked = loop.time()


def pinned_windows(plan: list[Action]) -> list[tuple[str, float, float]]:
    """(the only release that may serve, from, until) on the event loop's clock."""
    by_name = {a.name: a for a in plan}
    return [
        ("blue", by_name["rollback"].acked, by_name["weights green 60"].sent),
        ("green", by_name["promote"].acked, by_name["weights blue 25"].sent),
    ]
