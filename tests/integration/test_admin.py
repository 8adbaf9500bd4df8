"""The admin API over real HTTP, and the ``switchback`` admin commands against it.

``FakeRuntime`` is a small but honest ``AdminRuntime``: weights in a dict, a real Prometheus
registry, the rollout as a few states, refusals as InvalidInput / RolloutError / ConfigError.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from proxy.admin.api import AdminRuntime, make_admin_app
from proxy.admin.client import AdminClient, AdminError
from proxy.cli.commands import main
from proxy.core.report import ElementInfo, UsageRow, build_report, report_to_json
from proxy.errors import ConfigError, InvalidInput, RolloutError
from proxy.schema import AdminConfig, Config, ReleaseConfig

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_TOKEN = "r3ad-only-token"
READ_AUTH = {"Authorization": f"Bearer {READ_TOKEN}"}
NOW = 1_800_000_000.0
DAY = 86_400.0


class FakeRuntime:
    def __init__(self, token: str | None = TOKEN, admin: AdminConfig | None = None) -> None:
        releases = {
            "blue": ReleaseConfig(url="http://127.0.0.1:9001"),
            "green": ReleaseConfig(url="http://127.0.0.1:9002"),
        }
        admin = admin if admin is not None else AdminConfig(token=token)
        self.config = Config(releases=releases, admin=admin, source="t.yaml")
        self.ready = True
        self.registry = CollectorRegistry()
        self.changes = Counter(
            "switchback_admin_changes", "Traffic changes made.", registry=self.registry
        )
        self.stable, self.candidate = "blue", "green"
        self.weights = {"blue": 100.0, "green": 0.0}
        self.source = "config"
        self.rollout: dict[str, Any] = {"state": "idle", "step": 0, "steps": [1.0, 100.0]}
        self.overrides: dict[str, Any] | None = None
        self.reason: str | None = None
        self.reload_error: str | None = None
        self.broken = False
        self.used_by: list[str] = ["web-app"]
        self.days: int | None | str = "not asked"

    def _summary(self) -> dict[str, Any]:
        return {
            "stable": self.stable,
            "candidate": self.candidate,
            "weights": dict(self.weights),
            "source": self.source,
            "rollout": {**self.rollout, "candidate_weight": self.weights[self.candidate]},
        }

    def _swap(self, weights: dict[str, float]) -> dict[str, Any]:
        self.weights = weights
        self.source = "state"
        self.changes.inc()
        return self._summary()

    def status(self) -> dict[str, Any]:
        if self.broken:
            raise RuntimeError("secret internals at 0xdeadbeef")
        stats = {"in_flight": 0, "requests": 10, "rate_per_s": 1.5, "error_rate": 0.0}
        return {
            **self._summary(),
            "uptime_seconds": 65.0,
            "config_file": self.config.source,
            "releases": {
                name: {"url": rel.url, "weight": self.weights[name], **stats, "p99_ms": 4.0}
                for name, rel in self.config.releases.items()
            },
        }

    def set_weights(self, weights: dict[str, float]) -> dict[str, Any]:
        for name in weights:
            if name not in self.weights:
                raise InvalidInput(f"weights.{name}: unknown release")
        merged = {**self.weights, **weights}
        if sum(merged.values()) != 100:
            raise InvalidInput(f"weights: {merged} do not sum to 100")
        return self._swap(merged)

    def rollback(self, reason: str) -> dict[str, Any]:
        self.reason = reason
        self.rollout = {**self.rollout, "state": "rolled_back", "reason": reason}
        return self._swap({self.stable: 100.0, self.candidate: 0.0})

    def promote(self) -> dict[str, Any]:
        if self.weights[self.candidate] == 0:
            raise RolloutError(f"{self.candidate} carries no traffic: nothing to promote")
        self.stable, self.candidate = self.candidate, self.stable
        self.rollout = {**self.rollout, "state": "promoted"}
        return self._swap({self.stable: 100.0, self.candidate: 0.0})

    def start_rollout(self, overrides: dict[str, Any]) -> dict[str, Any]:
        if self.rollout["state"] in ("ramping", "paused"):
            raise RolloutError(f"can't handle event start when state={self.rollout['state']}")
        self.overrides = overrides
        steps = overrides.get("steps", [1.0, 100.0])
        self.rollout = {"state": "ramping", "step": 0, "steps": steps, "step_seconds": 60.0}
        return self._swap({self.stable: 100.0 - steps[0], self.candidate: steps[0]})

    def pause_rollout(self) -> dict[str, Any]:
        if self.rollout["state"] != "ramping":
            raise RolloutError(f"can't handle event pause when state={self.rollout['state']}")
        self.rollout = {**self.rollout, "state": "paused"}
        return self._summary()

    def resume_rollout(self) -> dict[str, Any]:
        if self.rollout["state"] != "paused":
            raise RolloutError(f"can't handle event resume when state={self.rollout['state']}")
        self.rollout = {**self.rollout, "state": "ramping"}
        return self._summary()

    async def reload(self) -> dict[str, Any]:
        await asyncio.sleep(0)
        if self.reload_error is not None:
            raise ConfigError(self.reload_error)
        return {"reloaded": self.config.source, **self._summary()}

    async def deprecation_report(self, days: int | None) -> dict[str, Any]:
        self.days = days
        info = ElementInfo(id="user-role", kind="field", element="user.role", deprecated_at=0.0)
        usage = [
            UsageRow(
                element="user-role",
                client=client,
                kinds=("exposure",),
                count=12,
                first_seen=NOW - 3 * DAY,
                last_seen=NOW - DAY,
            )
            for client in self.used_by
        ]
        window = days or 30
        reports = build_report([info], usage, {"user-role": NOW - 90 * DAY}, NOW, window)
        return report_to_json(reports, NOW, window)


def changes(runtime: FakeRuntime) -> float | None:
    return runtime.registry.get_sample_value("switchback_admin_changes_total")


def test_fake_runtime_is_an_admin_runtime() -> None:
    runtime: AdminRuntime = FakeRuntime()  # what mypy would check, asserted at run time too
    assert all(callable(getattr(runtime, name)) for name in ("status", "reload", "promote"))


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
async def client(aiohttp_client: Any, runtime: FakeRuntime) -> TestClient[Any, Any]:
    return await aiohttp_client(make_admin_app(runtime))  # type: ignore[no-any-return]


async def json_of(response: Any) -> Any:
    assert response.content_type == "application/json"
    return orjson.loads(await response.read())


# -- reads are open --


async def test_health_ready_and_status_need_no_token(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    response = await client.get("/healthz")
    assert (response.status, await json_of(response)) == (200, {"status": "ok"})
    response = await client.get("/readyz")
    assert (response.status, await json_of(response)) == (200, {"ready": True})
    runtime.ready = False
    response = await client.get("/readyz")
    assert (response.status, await json_of(response)) == (503, {"ready": False})
    response = await client.get("/status")
    assert response.status == 200
    assert (await json_of(response))["releases"]["blue"]["weight"] == 100.0


async def test_metrics_parse_as_prometheus_text(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    runtime.changes.inc(3)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(await response.text())}
    assert families["switchback_admin_changes"].samples[0].value == 3.0


async def test_deprecations_passes_days_on(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    response = await client.get("/deprecations")
    assert response.status == 200 and runtime.days is None
    response = await client.get("/deprecations?days=7")
    assert (await json_of(response))["days"] == 7 and runtime.days == 7
    for bad in ("0", "-1", "x", "1.5", "٣"):
        response = await client.get("/deprecations", params={"days": bad})
        assert response.status == 400
        assert await json_of(response) == {
            "error": f'days: "{bad}" is not a positive whole number',
            "code": "invalid_input",
        }


# -- writes need the token --

WRITES = [
    ("PUT", "/traffic", {"weights": {"blue": 75, "green": 25}}),
    ("POST", "/rollback", None),
    ("POST", "/promote", None),
    ("POST", "/rollout", None),
    ("POST", "/rollout/pause", None),
    ("POST", "/rollout/resume", None),
    ("POST", "/reload", None),
]


@pytest.mark.parametrize("method, path, body", WRITES)
@pytest.mark.parametrize(
    "headers, error",
    [
        ({}, "missing admin token"),
        ({"Authorization": "Bearer wrong"}, "invalid admin token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid admin token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing admin token"),
        ({"Authorization": "Bearer"}, "missing admin token"),
    ],
)
async def test_writes_without_the_right_token_are_refused(
    client: TestClient[Any, Any],
    runtime: FakeRuntime,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str],
    error: str,
) -> None:
    response = await client.request(method, path, json=body, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert await json_of(response) == {"error": error, "code": "unauthorized"}
    assert runtime.weights == {"blue": 100.0, "green": 0.0}
    assert changes(runtime) == 0


async def test_the_right_token_sets_weights(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    body = {"weights": {"blue": 75, "green": 25}}
    response = await client.put("/traffic", json=body, headers=AUTH)
    assert response.status == 200
    assert (await json_of(response))["weights"] == {"blue": 75.0, "green": 25.0}
    assert runtime.weights == {"blue": 75.0, "green": 25.0}
    # The scheme name is case-insensitive (RFC 9110).
    response = await client.put("/traffic", json=body, headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status == 200


async def test_without_a_token_loopback_may_write(aiohttp_client: Any) -> None:
    runtime = FakeRuntime(token=None)
    client = await aiohttp_client(make_admin_app(runtime))
    response = await client.post("/rollback", json={"reason": "from the sidecar's own shell"})
    assert response.status == 200
    assert runtime.reason == "from the sidecar's own shell"


async def test_without_a_token_other_peers_may_not_write(aiohttp_client: Any) -> None:
    @web.middleware
    async def from_afar(request: web.Request, handler: Any) -> web.StreamResponse:
        return await handler(request.clone(remote="203.0.113.7"))  # type: ignore[no-any-return]

    runtime = FakeRuntime(token=None)
    app = make_admin_app(runtime)
    app.middlewares.insert(0, from_afar)
    client = await aiohttp_client(app)
    response = await client.post("/rollback")
    assert response.status == 403
    assert (await json_of(response))["error"].startswith("admin writes from a non-loopback peer")
    assert runtime.reason is None
    assert (await client.get("/status")).status == 200  # reads stay open


# -- beyond loopback, reads that name clients need a token too --

READS = ["/status", "/metrics", "/deprecations"]
WEIGHTS = {"weights": {"blue": 75, "green": 25}}


@pytest.fixture
async def remote() -> AsyncIterator[tuple[str, FakeRuntime]]:
    """The admin API bound on every interface (not loopback), called through 127.0.0.1."""
    admin = AdminConfig(listen="0.0.0.0:0", token=TOKEN, read_token=READ_TOKEN)
    runtime = FakeRuntime(admin=admin)
    runner = web.AppRunner(make_admin_app(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "0.0.0.0", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}", runtime
    await runner.cleanup()


async def call(
    url: str, method: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, headers=headers, json=body) as response,
    ):
        return response.status, dict(response.headers), await response.read()


@pytest.mark.parametrize("path", READS)
async def test_beyond_loopback_reads_need_the_read_or_the_write_token(
    remote: tuple[str, FakeRuntime], path: str
) -> None:
    base, runtime = remote
    for headers, error in [
        ({}, "missing admin token"),
        ({"Authorization": "Bearer wrong"}, "invalid admin token"),
        ({"Authorization": f"Bearer {READ_TOKEN}x"}, "invalid admin token"),
        ({"Authorization": f"Basic {READ_TOKEN}"}, "missing admin token"),
    ]:
        status, head, body = await call(base + path, "GET", headers)
        assert (status, head["WWW-Authenticate"]) == (401, "Bearer")
        assert orjson.loads(body) == {"error": error, "code": "unauthorized"}
        assert b"web-app" not in body and b"blue" not in body
        status, head, _ = await call(base + path, "HEAD", headers)
        assert (status, head["WWW-Authenticate"]) == (401, "Bearer")
    for headers in (READ_AUTH, AUTH, {"Authorization": f"bearer {READ_TOKEN}"}):
        status, _, body = await call(base + path, "GET", headers)
        assert status == 200
        assert body  # the status, the exposition or the report
    status, _, body = await call(base + "/deprecations", "GET", READ_AUTH)
    assert [c["client"] for c in orjson.loads(body)["elements"][0]["clients"]] == ["web-app"]


async def test_beyond_loopback_probes_stay_open(remote: tuple[str, FakeRuntime]) -> None:
    base, runtime = remote
    status, _, body = await call(base + "/healthz", "GET")
    assert (status, orjson.loads(body)) == (200, {"status": "ok"})
    status, _, body = await call(base + "/readyz", "GET")
    assert (status, orjson.loads(body)) == (200, {"ready": True})
    runtime.ready = False
    status, _, body = await call(base + "/readyz", "GET")
    assert (status, orjson.loads(body)) == (503, {"ready": False})


@pytest.mark.parametrize("method, path, body", WRITES)
async def test_the_read_token_never_allows_a_change(
    remote: tuple[str, FakeRuntime], method: str, path: str, body: Any
) -> None:
    base, runtime = remote
    status, head, answer = await call(base + path, method, READ_AUTH, body)
    assert status == 403 and "WWW-Authenticate" not in head
    assert orjson.loads(answer) == {
        "error": "the admin read token allows reads only; changes need admin.token",
        "code": "forbidden",
    }
    assert (runtime.weights, runtime.reason, runtime.overrides) == (
        {"blue": 100.0, "green": 0.0},
        None,
        None,
    )
    assert changes(runtime) == 0


async def test_beyond_loopback_the_write_token_still_writes(
    remote: tuple[str, FakeRuntime],
) -> None:
    base, runtime = remote
    status, _, _ = await call(base + "/traffic", "PUT", {}, WEIGHTS)
    assert status == 401
    status, _, _ = await call(base + "/traffic", "PUT", AUTH, WEIGHTS)
    assert status == 200 and runtime.weights == {"blue": 75.0, "green": 25.0}


async def test_on_loopback_a_read_token_closes_the_reads_too(aiohttp_client: Any) -> None:
    runtime = FakeRuntime(admin=AdminConfig(token=TOKEN, read_token=READ_TOKEN))
    client = await aiohttp_client(make_admin_app(runtime))
    for path in READS:
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers=READ_AUTH)).status == 200
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200


async def test_on_loopback_without_a_read_token_reads_stay_open(
    client: TestClient[Any, Any],
) -> None:
    for path in READS:
        assert (await client.get(path)).status == 200


async def test_cli_reads_send_the_token_beyond_loopback(
    remote: tuple[str, FakeRuntime],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, runtime = remote
    assert await cli("status", "--admin", base) == 1
    assert capsys.readouterr().err == (
        "switchback: missing admin token (give --token or set SWITCHBACK_ADMIN_TOKEN)\n"
    )
    assert await cli("status", "--admin", base, "--token", READ_TOKEN) == 0
    assert "blue" in capsys.readouterr().out
    assert await cli("report", "--admin", base, "--token", READ_TOKEN, "--days", "7") == 0
    assert "web-app" in capsys.readouterr().out and runtime.days == 7
    monkeypatch.setenv("SWITCHBACK_ADMIN_TOKEN", READ_TOKEN)
    assert await cli("report", "--admin", base, "--fail-if-used", "user-role") == 3
    assert await cli("rollback", "--admin", base) == 1
    assert capsys.readouterr().err == (
        "switchback: the admin read token allows reads only; changes need admin.token\n"
    )
    assert runtime.reason is None
    assert await cli("weights", "green=25", "--admin", base, "--token", TOKEN) == 0
    assert runtime.weights == {"blue": 75.0, "green": 25.0}


# -- errors as JSON --


@pytest.mark.parametrize(
    "method, path, raw, error",
    [
        ("PUT", "/traffic", b"{", "request body: invalid JSON: "),
        ("PUT", "/traffic", b"", "request body: expected a JSON object"),
        ("PUT", "/traffic", b"[1]", "request body: expected a JSON object, got [1]"),
        ("PUT", "/traffic", b'{"weights": {"green": "x"}}', 'weights.green: "x" is not a number'),
        ("PUT", "/traffic", b'{"weights": {"green": true}}', "weights.green: true is not a number"),
        ("PUT", "/traffic", b'{"weights": {}}', "weights: expected an object like"),
        ("PUT", "/traffic", b'{"weights": 25}', "weights: expected an object like"),
        ("PUT", "/traffic", b'{"weight": {"green": 1}}', "weight: unknown key (expected one of"),
        ("POST", "/rollback", b'{"reason": 5}', "reason: 5 is not a string"),
        ("POST", "/rollout", b'{"steps": "fast"}', 'steps: "fast" is not a list of numbers'),
        ("POST", "/rollout", b'{"steps": [1, "x"]}', 'steps[1]: "x" is not a number'),
        ("POST", "/rollout", b'{"min_requests": 1.5}', "min_requests: 1.5 is not a whole number"),
        ("POST", "/rollout", b'{"auto_promote": "yes"}', 'auto_promote: "yes" is not true or'),
        ("POST", "/rollout", b'{"step": 1}', "step: unknown key (expected one of: auto_promote,"),
    ],
)
async def test_bad_bodies_are_400_naming_the_problem(
    client: TestClient[Any, Any],
    runtime: FakeRuntime,
    method: str,
    path: str,
    raw: bytes,
    error: str,
) -> None:
    response = await client.request(method, path, data=raw, headers=AUTH)
    assert response.status == 400
    assert (await json_of(response))["error"].startswith(error)
    assert changes(runtime) == 0


async def test_rollout_overrides_reach_the_runtime(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    body = {"steps": [5, 50, 100], "step_seconds": 30, "min_requests": 10, "auto_promote": True}
    response = await client.post("/rollout", json=body, headers=AUTH)
    assert response.status == 200
    assert runtime.overrides == {
        "steps": [5.0, 50.0, 100.0],
        "step_seconds": 30.0,
        "min_requests": 10,
        "auto_promote": True,
    }
    assert runtime.weights == {"blue": 95.0, "green": 5.0}


async def test_illegal_moves_are_409(client: TestClient[Any, Any]) -> None:
    response = await client.post("/promote", headers=AUTH)
    assert response.status == 409
    assert await json_of(response) == {
        "error": "green carries no traffic: nothing to promote",
        "code": "illegal_move",
    }
    response = await client.post("/rollout/resume", headers=AUTH)
    assert response.status == 409


async def test_values_the_runtime_refuses_are_400(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    response = await client.put("/traffic", json={"weights": {"green": 140}}, headers=AUTH)
    assert response.status == 400
    answer = await json_of(response)
    assert "do not sum to 100" in answer["error"] and answer["code"] == "invalid_input"
    assert changes(runtime) == 0


async def test_config_errors_are_400_as_they_are(
    client: TestClient[Any, Any], runtime: FakeRuntime
) -> None:
    runtime.reload_error = "t.yaml: traffic.green: 140 is not a percentage (0-100)"
    response = await client.post("/reload", headers=AUTH)
    assert response.status == 400
    assert await json_of(response) == {"error": runtime.reload_error, "code": "invalid_config"}


async def test_unknown_route_and_wrong_method_are_json(client: TestClient[Any, Any]) -> None:
    response = await client.get("/nope")
    assert response.status == 404
    assert await json_of(response) == {"error": "not found: GET /nope", "code": "not_found"}
    # 404 comes before auth: nothing is there to protect.
    response = await client.post("/nope")
    assert response.status == 404
    response = await client.post("/status")
    assert response.status == 405
    assert response.headers["Allow"] == "GET,HEAD"
    assert await json_of(response) == {
        "error": "method not allowed: POST /status (allowed: GET, HEAD)",
        "code": "method_not_allowed",
    }
    response = await client.get("/traffic")
    assert response.status == 405
    assert (await json_of(response))["error"].endswith("(allowed: PUT)")


async def test_an_unexpected_error_is_500_without_a_traceback(
    client: TestClient[Any, Any], runtime: FakeRuntime, caplog: pytest.LogCaptureFixture
) -> None:
    runtime.broken = True
    with caplog.at_level(logging.ERROR, logger="proxy.admin.api"):
        response = await client.get("/status")
    assert response.status == 500
    body = await response.read()
    assert orjson.loads(body) == {"error": "internal error", "code": "internal_error"}
    assert b"0xdeadbeef" not in body and b"Traceback" not in body
    assert "admin API: GET /status failed" in caplog.text
    assert "secret internals at 0xdeadbeef" in caplog.text  # the log has the traceback


# -- the CLI against a real server --


@pytest.fixture
async def admin_url(aiohttp_server: Any, runtime: FakeRuntime) -> str:
    server = await aiohttp_server(make_admin_app(runtime))
    return str(server.make_url("")).rstrip("/")


@pytest.fixture(autouse=True)
def _no_admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHBACK_ADMIN", raising=False)
    monkeypatch.delenv("SWITCHBACK_ADMIN_TOKEN", raising=False)


async def cli(*argv: str) -> int:
    """``main`` in a thread: it blocks on urllib while the test's loop serves the admin API."""
    return await asyncio.to_thread(main, list(argv))


async def test_cli_status(admin_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert await cli("status", "--admin", admin_url) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == [
        "blue",
        "stable",
        "100%",
        "0",
        "1.5",
        "0.00%",
        "4.0",
        "ms",
    ]
    assert "rollout:       idle\n" in out
    assert "traffic from:  config (t.yaml)\n" in out
    assert "uptime:        1m 5s\n" in out

    assert await cli("status", "--admin", admin_url, "--json") == 0
    assert orjson.loads(capsys.readouterr().out)["stable"] == "blue"


async def test_cli_weights(
    admin_url: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("weights", "green=25", "--admin", admin_url, "--token", TOKEN) == 0
    assert runtime.weights == {"blue": 75.0, "green": 25.0}
    assert (
        capsys.readouterr().out
        == "weights set\nweights:  blue 75% (stable), green 25%\nrollout:  idle\n"
    )

    assert await cli("weights", "red=5", "--admin", admin_url, "--token", TOKEN) == 1
    assert capsys.readouterr().err == "switchback: red: unknown release (known: blue, green)\n"


async def test_cli_token_and_url_from_the_environment(
    admin_url: str, runtime: FakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBACK_ADMIN", admin_url)
    monkeypatch.setenv("SWITCHBACK_ADMIN_TOKEN", TOKEN)
    assert await cli("weights", "blue=40", "green=60") == 0
    assert runtime.weights == {"blue": 40.0, "green": 60.0}


async def test_cli_write_refused(
    admin_url: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli("rollback", "--admin", admin_url) == 1
    err = capsys.readouterr().err
    assert err == ("switchback: missing admin token (give --token or set SWITCHBACK_ADMIN_TOKEN)\n")
    assert await cli("promote", "--admin", admin_url, "--token", TOKEN) == 1
    assert capsys.readouterr().err == ("switchback: green carries no traffic: nothing to promote\n")
    assert runtime.reason is None


async def test_cli_rollout_and_rollback(
    admin_url: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--admin", admin_url, "--token", TOKEN]
    argv = ["rollout", "start", "--steps", "2,50,100", "--step-seconds", "30", "--auto-promote"]
    assert await cli(*argv, *common) == 0
    assert runtime.overrides == {"steps": [2.0, 50.0, 100.0], "step_seconds": 30.0,
                                 "auto_promote": True}  # fmt: skip
    assert "rollout:  ramping, step 1 of 3 (green at 2%, 60 s per step)" in capsys.readouterr().out
    assert await cli("rollout", "pause", *common) == 0
    assert runtime.rollout["state"] == "paused"
    assert await cli("rollout", "resume", *common) == 0
    assert runtime.rollout["state"] == "ramping"

    capsys.readouterr()
    assert await cli("rollback", "--reason", "p99 looks wrong", *common) == 0
    assert runtime.reason == "p99 looks wrong"
    assert runtime.weights == {"blue": 100.0, "green": 0.0}
    assert capsys.readouterr().out == (
        "rolled back\n"
        "weights:  blue 100% (stable), green 0%\n"
        "rollout:  rolled_back; reason: p99 looks wrong\n"
    )
    assert await cli("rollback", *common) == 0
    assert runtime.reason == "manual rollback via the admin API"


async def test_cli_reload_refused_prints_every_line(
    admin_url: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime.reload_error = "t.yaml: listen: changing it needs a restart\nt.yaml: releases: renamed"
    assert await cli("reload", "--admin", admin_url, "--token", TOKEN) == 1
    assert capsys.readouterr().err == (
        "switchback: t.yaml: listen: changing it needs a restart\n"
        "switchback: t.yaml: releases: renamed\n"
    )


async def test_cli_report_fail_if_used(
    admin_url: str, runtime: FakeRuntime, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--admin", admin_url]
    assert await cli("report", "--days", "7", *common) == 0
    out = capsys.readouterr().out
    assert runtime.days == 7
    assert "user-role" in out and "web-app" in out

    assert await cli("report", "--fail-if-used", "user.role", *common) == 3
    assert capsys.readouterr().out.endswith(
        "user.role: still used by a client in the last 30 days\n"
    )

    runtime.used_by = []
    assert await cli("report", "--fail-if-used", "user-role", *common) == 0
    assert await cli("report", "--fail-if-used", "user.name", *common) == 2
    assert capsys.readouterr().err == (
        "switchback: unknown deprecated element: user.name (known: user-role)\n"
    )


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_cli_cannot_reach_the_admin_api(
    closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    assert main(["status", "--admin", url]) == 1
    assert capsys.readouterr().err == (
        f"switchback: cannot reach the admin API at {url}: Connection refused\n"
    )


def test_client_times_out(silent_port: int) -> None:
    client = AdminClient(f"127.0.0.1:{silent_port}", None, timeout=0.2)
    with pytest.raises(AdminError, match="cannot reach the admin API at .*: timed out") as info:
        client.get("/status")
    assert info.value.status is None


@pytest.mark.parametrize("url", ["ftp://host", "http://", "http://host:port"])
def test_client_refuses_a_bad_url(url: str) -> None:
    with pytest.raises(AdminError, match="invalid admin URL"):
        AdminClient(url)


async def test_client_carries_the_server_error_status_and_code(admin_url: str) -> None:
    client = AdminClient(admin_url, TOKEN)
    with pytest.raises(AdminError) as info:
        await asyncio.to_thread(client.send, "PUT", "/traffic", {"weights": {"green": "x"}})
    assert (info.value.status, info.value.code, str(info.value)) == (
        400,
        "invalid_input",
        'weights.green: "x" is not a number',
    )
