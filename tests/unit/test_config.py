"""The config loader: YAML, ${VAR} substitution, type errors, semantic checks, shipped files."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.config.load import initial_traffic, load_config, parse_config
from proxy.core.routing import TrafficState
from proxy.errors import ConfigError
from proxy.schema import Config

ROOT = Path(__file__).resolve().parents[2]
SRC = "t.yaml"
UTC = dt.UTC
DELETE = object()

BASE: dict[str, Any] = {
    "listen": "127.0.0.1:8080",
    "admin": {"listen": "127.0.0.1:9901", "token": "s3cret"},
    "releases": {
        "blue": {"url": "http://127.0.0.1:9001"},
        "green": {"url": "http://127.0.0.1:9002"},
    },
    "traffic": {
        "stable": "blue",
        "weights": {"blue": 90, "green": 10},
        "override_header": "X-Release",
        "pins": {"green": ["beta-app"], "blue": ["legacy-ios"]},
    },
    "clients": {"id_header": "X-Client-Id", "api_key_header": "X-Api-Key"},
    "deprecations": [
        {"id": "user-role", "field": "user.role", "deprecated": dt.date(2026, 6, 1)},
        {"id": "users-v0", "endpoint": "GET /v0/users/{id}", "deprecated": dt.date(2026, 3, 1)},
    ],
}


def changed(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with ``("traffic.weights.green", 140)``-style changes; digits index lists."""
    raw = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        node: Any = raw
        for key in parents:
            node = node.setdefault(key, {}) if isinstance(node, dict) else node[key]
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return raw


def parse(raw: dict[str, Any] | str, env: dict[str, str] | None = None) -> Config:
    text = raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False)
    return parse_config(text, SRC, env or {})


def error(raw: dict[str, Any] | str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse(raw, env)
    return str(info.value)


def test_base_is_valid() -> None:
    cfg = parse(BASE)
    assert cfg.source == SRC
    assert cfg.deprecations[0].deprecated == dt.datetime(2026, 6, 1, tzinfo=UTC)


# Each case: the change, then the start of the expected line ("key.path: value") and the problem.
BAD = {
    # -- types (msgspec), in our words
    "type": (
        [("traffic.weights.green", "lots")],
        "traffic.weights.green: 'lots'",
        "is not a number",
    ),
    "unknown key": (
        [("traffic.wieghts", {"blue": 100})],
        "traffic.wieghts:",
        "unknown key (known: stable, weights, override_header, pins, served_by_header)",
    ),
    "unknown key in a release": (
        [("releases.green.uri", "x")],
        "releases.green.uri:",
        "unknown key (known: url)",
    ),
    "source is not a key": ([("source", "x")], "source:", "unknown key"),
    # lone surrogates (YAML's "\ud800" escape): msgspec raised UnicodeEncodeError
    "surrogate": ([("admin.token", "\ud800")], "admin.token: '\\ud800'", "lone surrogate (U+D800)"),
    "surrogate key": ([("\udc80", 1)], "['\\udc80']: the key '\\udc80'", "lone surrogate (U+DC80)"),
    "dict key placeholder": ([("releases.green.url", 9002)], "releases.green.url: 9002", "string"),
    "list item": ([("traffic.pins.green", ["a", 7])], "traffic.pins.green[1]: 7", "string"),
    "required": ([("releases", DELETE)], "releases:", "is missing (required)"),
    "required in list": ([("deprecations.0.id", DELETE)], "deprecations[0].id:", "missing"),
    "not a key string": ([("traffic.pins", {1: ["a"]})], "traffic.pins: key 1", "not a string"),
    "null section": ([("rollout", None)], "rollout: null", "is not a mapping"),
    "yaml 1.1 boolean": ([("rollout.auto_promote", "yes")], "rollout.auto_promote: 'yes'", "true"),
    "bool is no number": (
        [("rollout.min_requests", True)],
        "rollout.min_requests: true",
        "integer",
    ),
    "date": ([("deprecations.0.deprecated", "June")], "deprecations[0].deprecated: 'June'", "date"),
    # -- listeners
    "listen no port": ([("listen", "localhost")], "listen: 'localhost'", "host:port"),
    "listen port word": ([("listen", "127.0.0.1:http")], "listen: '127.0.0.1:http'", "port"),
    "listen port big": ([("listen", "127.0.0.1:65536")], "listen: '127.0.0.1:65536'", "port"),
    "listen bad host": ([("listen", "a b:80")], "listen: 'a b:80'", "invalid host"),
    "listen bad ipv4": ([("listen", "300.1.1.1:80")], "listen: '300.1.1.1:80'", "IPv4"),
    "admin ipv6 brackets": ([("admin.listen", "::1:9901")], "admin.listen: '::1:9901'", "brackets"),
    "admin bad ipv6": ([("admin.listen", "[::g]:9901")], "admin.listen: '[::g]:9901'", "IPv6"),
    # -- releases
    "three releases": (
        [("releases.red", {"url": "http://127.0.0.1:9003"})],
        "releases: ['blue', 'green', 'red']",
        "exactly two",
    ),
    "one release": ([("releases.green", DELETE)], "releases: ['blue']", "exactly two"),
    "release name": (
        [("releases.Green", {"url": "http://h:1"}), ("releases.green", DELETE)],
        "releases.Green: 'Green'",
        "is not a release name",
    ),
    "url no scheme": (
        [("releases.green.url", "127.0.0.1:9002")],
        "releases.green.url: '127.0.0.1:9002'",
        "has no scheme (expected http://host:port)",
    ),
    "url https": ([("releases.green.url", "https://h:443")], "url: 'https://h:443'", "https"),
    "url scheme": ([("releases.green.url", "ftp://h:21")], "url: 'ftp://h:21'", "scheme 'ftp'"),
    "url path": ([("releases.green.url", "http://h:1/v1")], "url: 'http://h:1/v1'", "path"),
    "url query": ([("releases.green.url", "http://h:1/?a")], "url: 'http://h:1/?a'", "query"),
    "url fragment": ([("releases.green.url", "http://h:1#x")], "url: 'http://h:1#x'", "fragment"),
    "url port 0": ([("releases.green.url", "http://h:0")], "url: 'http://h:0'", "port (expected 1"),
    "url port": ([("releases.green.url", "http://h:99999")], "url: 'http://h:99999'", "port"),
    "url user": ([("releases.green.url", "http://u@h:1")], "url: 'http://u@h:1'", "credentials"),
    "url urlsplit refuses": (  # these were "cannot check this config (ValueError: ...)"
        [("releases.green.url", "http://[::1")],
        "releases.green.url: 'http://[::1'",
        "is not a URL: Invalid IPv6 URL (expected http://host:port)",
    ),
    "url NFKC": ([("releases.green.url", "http://a\uff03b:1")], "url: 'http://a", "NFKC"),
    # -- traffic
    "stable": ([("traffic.stable", "red")], "traffic.stable: 'red'", "is not a release"),
    "weight too big": (
        [("traffic.weights.green", 140), ("traffic.weights.blue", -40)],
        "traffic.weights.green: 140",
        "is not a percentage (0-100)",
    ),
    "weight negative": ([("traffic.weights.blue", -1)], "traffic.weights.blue: -1", "percentage"),
    "weight nan": ([("traffic.weights.blue", float("nan"))], "weights.blue: nan", "percentage"),
    "weight decimals": (
        [("traffic.weights.blue", 89.995), ("traffic.weights.green", 10.005)],
        "traffic.weights.blue: 89.995",
        "has more than two decimals",
    ),
    "weights sum": (
        [("traffic.weights.green", 20)],
        "traffic.weights: {blue: 90, green: 20}",
        "sum to 110, not 100",
    ),
    "weight missing": (
        [("traffic.weights", {"blue": 100})],
        "traffic.weights: {blue: 100}",
        "green",
    ),
    "weight unknown": (
        [("traffic.weights.red", 0)],
        "traffic.weights.red: 0",
        "is not a release (releases: blue, green)",
    ),
    "pin release": ([("traffic.pins.red", ["x"])], "traffic.pins.red: 'red'", "is not a release"),
    "pinned twice": (
        [("traffic.pins.blue", ["legacy-ios", "beta-app"])],
        "traffic.pins.blue: 'beta-app'",
        "is pinned twice (also to green)",
    ),
    "override header": (
        [("traffic.override_header", "X Release")],
        "traffic.override_header: 'X Release'",
        "is not a valid header name",
    ),
    "id header": ([("clients.id_header", "X:Id")], "clients.id_header: 'X:Id'", "header name"),
    "api key header": ([("clients.api_key_header", "")], "clients.api_key_header: ''", "header"),
    # -- admin token
    "open admin, no token": (
        [("admin.listen", "0.0.0.0:9901"), ("admin.token", None)],
        "admin.token: null",
        "is not allowed while admin.listen (0.0.0.0:9901) is not loopback",
    ),
    "open admin, empty token": (
        [("admin.listen", "[::]:9901"), ("admin.token", "")],
        "admin.token: ''",
        "loopback",
    ),
    "open admin on any port, no token": (
        [("admin.listen", "0.0.0.0:0"), ("admin.token", None)],
        "admin.token: null",
        "loopback",
    ),
    "named admin host, no token": (
        [("admin.listen", "admin.internal:9901"), ("admin.token", DELETE)],
        "admin.token: null",
        "loopback",
    ),
    # -- numbers
    "connect timeout": ([("upstream.connect_timeout", 0)], "upstream.connect_timeout: 0", "posit"),
    "response timeout": ([("upstream.response_timeout", -1)], "response_timeout: -1", "positive"),
    "drain timeout": ([("server.drain_timeout", float("inf"))], "drain_timeout: inf", "positive"),
    "keepalive nan": (
        [("server.keepalive_timeout", float("nan"))],
        "keepalive_timeout: nan",
        "posit",
    ),
    "keepalive 0": ([("server.keepalive_timeout", 0)], "server.keepalive_timeout: 0", "positive"),
    "int of 65 bits": (
        [("upstream.pool_size", 2**64)],
        "upstream.pool_size: 18446744073709551616",
        "is out of range (a 64-bit integer)",
    ),
    "pool size": ([("upstream.pool_size", -1)], "upstream.pool_size: -1", "is negative"),
    "body limit of 64 bits": (
        [("limits.max_body_bytes", 2**63)],
        "limits.max_body_bytes: 9223372036854775808",
        "is out of range (a 64-bit integer)",
    ),
    "max tracked": ([("clients.max_tracked", -5)], "clients.max_tracked: -5", "is negative"),
    "step seconds": ([("rollout.step_seconds", 0)], "rollout.step_seconds: 0", "positive"),
    "min requests": ([("rollout.min_requests", 0)], "rollout.min_requests: 0", "less than 1"),
    "error rate": ([("rollout.max_error_rate", 5)], "rollout.max_error_rate: 5", "rate (0-1)"),
    "p99": ([("rollout.max_p99_ms", -1)], "rollout.max_p99_ms: -1", ">= 0"),
    "error factor": ([("rollout.error_rate_factor", 0.5)], "error_rate_factor: 0.5", "factor"),
    "p99 factor": ([("rollout.p99_factor", 0.9)], "rollout.p99_factor: 0.9", "factor >= 1"),
    "ws grace": ([("rollout.websocket_grace", -1)], "rollout.websocket_grace: -1", ">= 0"),
    "body bytes": ([("telemetry.max_body_bytes", 0)], "telemetry.max_body_bytes: 0", "positive"),
    "report days": ([("telemetry.report_days", 0)], "telemetry.report_days: 0", "positive"),
    "retention": ([("telemetry.retention_days", 7)], "telemetry.retention_days: 7", "report_days"),
    "flush": ([("telemetry.flush_seconds", -2)], "telemetry.flush_seconds: -2", "positive"),
    "ledger scheme": (
        [("telemetry.ledger", "mysql://u@db/x")],
        "telemetry.ledger: 'mysql://u@db/x'",
        "is not a postgresql:// URL",
    ),
    "ledger password hidden": (
        [("telemetry.ledger", "postgresql://u:s3cret@/x")],
        "telemetry.ledger: 'postgresql://u:***@/x'",
        "names no host",
    ),
    "ledger database": (
        [("telemetry.ledger", "postgresql://u@db:5432")],
        "telemetry.ledger: 'postgresql://u@db:5432'",
        "names no database",
    ),
    "ledger port": (
        [("telemetry.ledger", "postgresql://u@db:99999/x")],
        "telemetry.ledger: 'postgresql://u@db:99999/x'",
        "is not a URL",
    ),
    "replica": ([("telemetry.replica", "")], "telemetry.replica: ''", "printable"),
    "spool": ([("telemetry.spool_max_rows", 10)], "telemetry.spool_max_rows: 10", "below 1000"),
    # -- rollout steps
    "no steps": ([("rollout.steps", [])], "rollout.steps: []", "is empty"),
    "step zero": ([("rollout.steps", [0, 100])], "rollout.steps[0]: 0", "(0, 100]"),
    "step over": ([("rollout.steps", [50, 150])], "rollout.steps[1]: 150", "(0, 100]"),
    "steps decrease": ([("rollout.steps", [10, 5, 100])], "rollout.steps[1]: 5", "above"),
    "steps repeat": ([("rollout.steps", [10, 10, 100])], "rollout.steps[1]: 10", "above"),
    "steps end": ([("rollout.steps", [10, 50])], "rollout.steps: [10, 50]", "does not end at 100"),
    "step decimals": ([("rollout.steps", [0.125, 100])], "steps[0]: 0.125", "two decimals"),
    # -- deprecations
    "duplicate id": (
        [("deprecations.1.id", "user-role")],
        "deprecations[1].id: 'user-role'",
        "is a duplicate of deprecations[0].id",
    ),
    "empty id": ([("deprecations.0.id", " ")], "deprecations[0].id: ' '", "is empty"),
    "two kinds": (
        [("deprecations.0.param", "sort_by")],
        "deprecations[0]: 'user-role'",
        "sets param and field; set exactly one of",
    ),
    "no kind": ([("deprecations.0.field", DELETE)], "deprecations[0]: 'user-role'", "sets none"),
    "sunset early": (
        [("deprecations.0.sunset", dt.date(2026, 5, 31))],
        "deprecations[0].sunset: 2026-05-31",
        "is earlier than deprecated (2026-06-01)",
    ),
    "link relative": (
        [("deprecations.0.link", "/changes")],
        "deprecations[0].link: '/changes'",
        "is not an absolute http(s) URL",
    ),
    "sunset link scheme": (
        [("deprecations.0.sunset_link", "ftp://example.com/x")],
        "deprecations[0].sunset_link: 'ftp://example.com/x'",
        "absolute http(s) URL",
    ),
    "empty param": (
        [("deprecations.0.field", DELETE), ("deprecations.0.param", "")],
        "deprecations[0].param: ''",
        "is empty",
    ),
    "on beside endpoint": (
        [("deprecations.1.on", "GET /v0/users")],
        "deprecations[1].on: 'GET /v0/users'",
        "beside endpoint",
    ),
    "endpoint without a path": (
        [("deprecations.1.endpoint", "GET")],
        "deprecations[1].endpoint: 'GET'",
        "has no path",
    ),
    "fields mode": (
        [("fields.mode", "sometimes")],
        "fields.mode: 'sometimes'",
        "is not one of off, prune, declare",
    ),
    "fields header": ([("fields.header", "X Fields")], "fields.header: 'X Fields'", "header name"),
    "fields status header": (
        [("fields.status_header", "")],
        "fields.status_header: ''",
        "header name",
    ),
    "fields query param": (
        [("fields.query_param", "a=b")],
        "fields.query_param: 'a=b'",
        "not a query parameter name",
    ),
    "fields cap above what is held": (
        [("fields.max_body_bytes", 10**9)],
        "fields.max_body_bytes: 1000000000",
        "between 1 and telemetry.max_body_bytes (8388608)",
    ),
    "fields cap": ([("fields.max_body_bytes", 0)], "fields.max_body_bytes: 0", "between 1"),
    "fields unknown key": ([("fields.prune", True)], "fields", "prune"),
}

# Written last: these go through proxy.core.jsonpaths.parse_path and proxy.core.rules.parse_route.
BAD_SYNTAX = {
    "field path": ([("deprecations.0.field", "user..role")], "deprecations[0].field: 'user..role'"),
    "request field path": (
        [("deprecations.0.field", DELETE), ("deprecations.0.request_field", "")],
        "deprecations[0].request_field: ''",
    ),
    "endpoint route": (
        [("deprecations.1.endpoint", "GET v0")],
        "deprecations[1].endpoint: 'GET v0'",
    ),
    "on route": ([("deprecations.0.on", "GET /a/x{id}")], "deprecations[0].on: 'GET /a/x{id}'"),
    "on words": ([("deprecations.0.on", "GET /a b")], "deprecations[0].on: 'GET /a b'"),
}


@pytest.mark.parametrize(("changes", "line", "problem"), BAD.values(), ids=BAD.keys())
def test_bad_config_names_key_and_value(
    changes: list[tuple[str, Any]], line: str, problem: str
) -> None:
    message = error(changed(*changes))
    found = [ln for ln in message.split("\n") if ln.startswith(f"{SRC}: ") and line in ln]
    assert found, message
    assert problem in found[0], message


@pytest.mark.parametrize(
    "listen", ["127.0.0.2:9901", "localhost:9901", "[::1]:9901", "127.255.0.1:1"]
)
def test_admin_without_token_is_fine_on_loopback(listen: str) -> None:
    cfg = parse(changed(("admin.listen", listen), ("admin.token", None)))
    assert cfg.admin.token is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("listen", "[::1]:8080"),
        ("listen", "0.0.0.0:1"),
        ("listen", "127.0.0.1:0"),  # any free port: the integration tests listen so
        ("admin.listen", "127.0.0.1:0"),
        ("listen", "switchback.default.svc.cluster.local:65535"),
        ("releases.green.url", "http://[::1]:9002/"),
        ("releases.green.url", "http://green"),
        ("traffic.weights", {"blue": 66.67, "green": 33.33}),
        ("rollout.steps", [0.5, 100]),
        ("deprecations.0.sunset", dt.date(2026, 6, 1)),
    ],
)
def test_edge_values_that_are_valid(key: str, value: Any) -> None:
    parse(changed((key, value)))


def test_huge_integers_are_shown_by_their_size() -> None:
    text = yaml.safe_dump(changed(("telemetry.report_days", "HUGE"))).replace(
        "HUGE", "0x" + "f" * 4000
    )
    assert error(text).split("\n") == [  # str() of these raised: "cannot check this config"
        f"{SRC}: telemetry.report_days: an integer of about 4817 digits is out of range "
        "(a 64-bit integer)",
        f"{SRC}: telemetry.retention_days: 400 is shorter than telemetry.report_days (an "
        "integer of about 4817 digits)",
    ]


def test_all_problems_are_reported_together() -> None:
    message = error(changed(("traffic.weights.green", 140), ("listen", "x"), ("rollout.steps", [])))
    lines = message.split("\n")
    assert len(lines) >= 3
    assert all(line.startswith(f"{SRC}: ") for line in lines)


@pytest.mark.parametrize(("changes", "line"), BAD_SYNTAX.values(), ids=BAD_SYNTAX.keys())
def test_bad_route_or_json_path(changes: list[tuple[str, Any]], line: str) -> None:
    message = error(changed(*changes))
    assert f"{SRC}: {line} is not a " in message, message


# -- YAML ------------------------------------------------------------------------------------------


def test_yaml_syntax_error_has_line_and_column() -> None:
    message = error("listen: 127.0.0.1:8080\nreleases: [blue\n")
    assert message.startswith(f"{SRC}: line 3, column 1: invalid YAML:"), message


@pytest.mark.parametrize(
    ("text", "what"), [("", "empty"), ("- a\n", "a list"), ("just text\n", "a str")]
)
def test_top_level_must_be_a_mapping(text: str, what: str) -> None:
    assert error(text) == f"{SRC}: the top level is {what}, not a mapping of settings"


def test_on_is_a_key_not_a_boolean() -> None:
    text = yaml.safe_dump(changed(("deprecations", DELETE))) + (
        "deprecations:\n- id: sort-by\n  param: sort_by\n"
        "  on: GET /users\n  deprecated: 2026-05-01\n"
    )
    assert parse(text).deprecations[0].on == "GET /users"


def test_recursive_alias_is_an_error() -> None:
    assert "refers to itself" in error("releases: &r {blue: *r}\n")


def test_alias_bomb_is_an_error() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    assert "more than 100000 values" in error("\n".join(lines) + "\n")


@pytest.mark.parametrize("depth", [100, 1000])  # our limit; Python's recursion limit
def test_deep_nesting_is_an_error(depth: int) -> None:
    assert error("a: " + "[" * depth + "]" * depth + "\n").endswith("nested too deeply")


# -- dates -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2026-06-01", dt.datetime(2026, 6, 1, tzinfo=UTC)),
        ("'2026-06-01'", dt.datetime(2026, 6, 1, tzinfo=UTC)),
        ("2026-06-01T10:30:00", dt.datetime(2026, 6, 1, 10, 30, tzinfo=UTC)),
        ("2026-06-01T10:30:00+02:00", dt.datetime(2026, 6, 1, 8, 30, tzinfo=UTC)),
        ("'2026-06-01T10:30:00Z'", dt.datetime(2026, 6, 1, 10, 30, tzinfo=UTC)),
    ],
)
def test_dates_become_utc_datetimes(written: str, expected: dt.datetime) -> None:
    text = yaml.safe_dump(changed(("deprecations", DELETE))) + (
        f"deprecations:\n- {{id: a, param: b, deprecated: {written}, sunset: {written}}}\n"
    )
    dep = parse(text).deprecations[0]
    assert dep.deprecated == expected and dep.deprecated.tzinfo is UTC
    assert dep.sunset == expected and dep.sunset.tzinfo is UTC


# -- ${VAR} substitution ---------------------------------------------------------------------------


def test_env_present() -> None:
    cfg = parse(changed(("admin.token", "${TOKEN}")), {"TOKEN": "abc"})
    assert cfg.admin.token == "abc"


@pytest.mark.parametrize("env", [{}, {"DIR": ""}])
def test_env_default_when_unset_or_empty(env: dict[str, str]) -> None:
    cfg = parse(changed(("state_dir", "${DIR:-/var/lib/x}")), env)
    assert cfg.state_dir == "/var/lib/x"


def test_env_inside_text_and_lists() -> None:
    cfg = parse(
        changed(("state_dir", "${ROOT}/state/${ENV:-dev}"), ("clients.known", ["${C}", "web"])),
        {"ROOT": "/srv", "C": "ios"},
    )
    assert cfg.state_dir == "/srv/state/dev"
    assert cfg.clients.known == ["ios", "web"]


def test_env_missing_names_key_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError) as info:
        load_config("config/production.yaml", {})
    assert str(info.value).splitlines() == [
        "config/production.yaml: admin.token: ${SWITCHBACK_ADMIN_TOKEN} is not set",
        "config/production.yaml: clients.api_key_secret: ${SWITCHBACK_API_KEY_SECRET} is not set",
    ]


def test_env_all_missing_are_reported() -> None:
    message = error(changed(("admin.token", "${A}"), ("releases.blue.url", "http://${B}:1")))
    assert message.split("\n") == [
        f"{SRC}: admin.token: ${{A}} is not set",
        f"{SRC}: releases.blue.url: ${{B}} is not set",
    ]


def test_env_whole_scalar_is_retyped() -> None:
    cfg = parse(
        changed(
            ("traffic.weights.blue", "${B}"),
            ("traffic.weights.green", "${G:-25}"),
            ("rollout.auto_promote", "${AUTO}"),
            ("rollout.min_requests", "${MIN}"),
            ("deprecations.0.deprecated", "${WHEN}"),
        ),
        {"B": "75", "AUTO": "true", "MIN": "20", "WHEN": "2026-06-01"},
    )
    assert cfg.traffic.weights == {"blue": 75.0, "green": 25.0}
    assert cfg.rollout.auto_promote is True and cfg.rollout.min_requests == 20
    assert cfg.deprecations[0].deprecated == dt.datetime(2026, 6, 1, tzinfo=UTC)


def test_env_string_fields_stay_strings() -> None:
    cfg = parse(
        changed(("admin.token", "${T}"), ("clients.known", ["${C}"])), {"T": "0123", "C": "true"}
    )
    assert cfg.admin.token == "0123" and cfg.clients.known == ["true"]


def test_env_retyped_value_still_checked() -> None:
    message = error(changed(("traffic.weights.green", "${G}")), {"G": "ten"})
    assert f"{SRC}: traffic.weights.green: 'ten' is not a number" in message


def test_env_escape() -> None:
    cfg = parse(changed(("state_dir", "/tmp/$${HOME}/$$x$")), {"HOME": "/root"})
    assert cfg.state_dir == "/tmp/${HOME}/$$x$"


@pytest.mark.parametrize("value", ["${1X}", "a ${X", "${X:default}", "${}"])
def test_env_malformed(value: str) -> None:
    assert f"{SRC}: state_dir: {value!r} has a malformed" in error(changed(("state_dir", value)))


def test_env_keys_are_not_substituted() -> None:
    message = error(changed(("releases.${X}", {"url": "http://h:1"})), {"X": "red"})
    assert f"{SRC}: releases['${{X}}']: '${{X}}' is not a release name" in message


# -- files -----------------------------------------------------------------------------------------

SHIPPED = [ROOT / "config" / name for name in ("dev.yaml", "staging.yaml", "production.yaml")]
API_KEY_SECRET = {"SWITCHBACK_API_KEY_SECRET": "a-shared-fleet-secret"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path, {"SWITCHBACK_ADMIN_TOKEN": "s3cret", **API_KEY_SECRET})
    assert cfg.source == str(path)
    assert set(cfg.releases) == {"blue", "green"}
    assert [d.id for d in cfg.deprecations] == [
        "user-role", "item-role", "users-v0", "sort-by", "legacy-flag",
    ]  # fmt: skip


def test_shipped_config_values() -> None:
    dev = load_config(ROOT / "config/dev.yaml", {})
    assert dev.admin.token == "dev-token" and dev.state_dir == "./state/dev"
    assert dev.traffic.weights == {"blue": 90.0, "green": 10.0}
    assert dev.rollout.steps == [10, 25, 50, 100] and dev.telemetry.warning_header
    prod = load_config(
        ROOT / "config/production.yaml",
        {"SWITCHBACK_ADMIN_TOKEN": "s3cret", "GREEN_URL": "http://10.0.0.7:8000", **API_KEY_SECRET},
    )
    assert prod.admin.token == "s3cret" and prod.admin.read_token == ""
    assert prod.clients.api_key_secret == API_KEY_SECRET["SWITCHBACK_API_KEY_SECRET"]
    assert prod.releases["green"].url == "http://10.0.0.7:8000"
    assert prod.traffic.weights == {"blue": 100.0, "green": 0.0}
    assert prod.rollout.steps == [1, 5, 10, 25, 50, 100] and prod.rollout.step_seconds == 60


def test_load_config_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBACK_ADMIN_TOKEN", "from-env")
    monkeypatch.setenv("SWITCHBACK_API_KEY_SECRET", "from-env-0123456789")
    assert load_config(ROOT / "config/staging.yaml").admin.token == "from-env"


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read: No such file or directory"):
        load_config(missing, {})
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        load_config(tmp_path, {})
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"listen: caf\xe9\n")
    with pytest.raises(ConfigError, match="latin.yaml: cannot read: not UTF-8"):
        load_config(latin, {})


# -- initial traffic -------------------------------------------------------------------------------


def test_initial_traffic() -> None:
    state = initial_traffic(load_config(ROOT / "config/dev.yaml", {}))
    assert state == TrafficState(
        stable="blue",
        candidate="green",
        weights={"blue": 90.0, "green": 10.0},
        override_header="x-release",
        pins={"beta-app": "green", "legacy-ios": "blue"},
    )


def test_initial_traffic_green_stable_without_override() -> None:
    cfg = parse(
        changed(
            ("traffic.stable", "green"),
            ("traffic.override_header", None),
            ("traffic.weights", {"blue": 0, "green": 100}),
        )
    )
    state = initial_traffic(cfg)
    assert (state.stable, state.candidate, state.override_header) == ("green", "blue", None)
    assert all(type(w) is float for w in state.weights.values())


def test_unexpected_exception_becomes_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(cfg: Config) -> list[str]:
        raise RuntimeError("bug")

    monkeypatch.setattr("proxy.config.checks.check", broken)
    assert error(BASE) == f"{SRC}: cannot check this config (RuntimeError: bug)"


def test_a_ledger_urls_password_never_shows_in_an_error() -> None:
    message = error(changed(("telemetry.ledger", "postgres://u:s3cret@db:5432")))
    assert "s3cret" not in message and "telemetry.ledger: 'postgres://u:***@db:5432'" in message
