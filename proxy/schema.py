"""The shape of a Switchback config file, as frozen msgspec structs.

These structs are the contract every other module reads. ``proxy.config.load_config`` parses
YAML, substitutes ``${VAR}``, converts into these types (msgspec reports type errors with the
key path) and then checks what types cannot say (weights sum to 100, known release names, ...).
Durations are seconds (float); weights are percentages (0-100, up to two decimals).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec


class _Frozen(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class AdminConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    listen: str = "127.0.0.1:9901"
    # Bearer token for non-GET admin endpoints. Empty/None: the admin listener binds loopback only.
    # Beyond loopback, GET /status, /metrics and /deprecations need it too (or read_token).
    token: str | None = None
    # Bearer token for those reads only (e.g. Prometheus); never allows a change. When set, the
    # reads need a token on loopback too. /healthz and /readyz never need one.
    read_token: str | None = None


class ReleaseConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    url: str  # http://host:port, no path


class TrafficConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    stable: str = "blue"
    weights: dict[str, float] = msgspec.field(default_factory=lambda: {"blue": 100.0, "green": 0.0})
    override_header: str | None = None  # e.g. "X-Release"; None disables overrides
    pins: dict[str, list[str]] = msgspec.field(default_factory=dict)  # release -> client ids
    served_by_header: bool = True  # add "X-Served-By: blue|green" to responses


class ClientsConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    id_header: str | None = "X-Client-Id"
    api_key_header: str | None = None  # e.g. "X-Api-Key": hashed, never stored in clear
    # The HMAC secret API keys are hashed with (>= 16 bytes); unset: $SWITCHBACK_API_KEY_SECRET,
    # else one generated in <state_dir>/api-key-secret (see proxy.config.secrets).
    api_key_secret: str | None = None
    known: list[str] = msgspec.field(default_factory=list)  # always keep their own metric label
    max_tracked: int = 100  # further clients beyond known ones share the label "other"


class UpstreamConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    connect_timeout: float = 2.0
    response_timeout: float = 30.0  # until the response head arrives; then 504
    read_timeout: float = 60.0  # a release silent this long mid-body is cut off
    # Idle keep-alive connections kept per release. Below the clients' concurrency, connections
    # churn (opened and closed per request): at 200 connections, 64 cost 60% more CPU per
    # request than 512 (loadtest/README.md). Bounded by limits.max_in_flight in practice.
    pool_size: int = 1024


class ServerConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    drain_timeout: float = 10.0  # SIGTERM: wait this long for in-flight requests
    keepalive_timeout: float = 75.0  # idle client connections are closed after this
    head_timeout: float = 60.0  # a request head not complete by then: 408 (nginx: 60 s)
    body_timeout: float = 60.0  # no request body bytes for this long: 408 (nginx: 60 s)
    send_timeout: float = 60.0  # a client not taking response bytes for this long is cut off
    xff_trusted: bool = False  # reserved: trust incoming X-Forwarded-* (not used for routing)


class LimitsConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """What one client or release may make Switchback hold; defaults in line with Envoy."""

    max_head_bytes: int = 64 * 1024  # request line and headers: 431
    max_headers: int = 100  # request header fields: 431
    max_target_bytes: int = 8 * 1024  # request target: 414
    max_body_bytes: int | None = None  # request body: 413 (off: the app decides)
    max_response_head_bytes: int = 64 * 1024  # a release's status line and headers: 502
    max_connections: int = 4096  # client connections; further ones are answered 503
    max_in_flight: int = 1024  # requests in flight per release (circuit breaker): 503
    max_loop_lag: float = 0.5  # seconds the event loop may fall behind before shedding: 503
    retry_after: int = 1  # seconds, in the Retry-After of every 503


class RolloutConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    steps: list[float] = msgspec.field(default_factory=lambda: [1.0, 5.0, 10.0, 25.0, 50.0, 100.0])
    step_seconds: float = 60.0  # time per step; one analysis window per step
    min_requests: int = 100  # candidate requests in a window before judging
    max_error_rate: float = 0.01  # candidate 5xx rate above max(this, factor x stable) -> rollback
    error_rate_factor: float = 2.0
    max_p99_ms: float = 500.0  # candidate p99 above max(this, factor x stable) -> rollback
    p99_factor: float = 1.5
    auto_promote: bool = False
    websocket_grace: float = 5.0  # rollback: close candidate WebSockets (1012) after this
    # Refuse a start while shadow traffic saw breaking differences within shadow.window.
    require_clean_shadow: bool = False


class ShadowConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Copies of requests the stable release served, sent to ``to`` and compared (README)."""

    to: str  # the release that gets the copies (the candidate)
    percent: float = 10.0  # share of the stable release's requests copied
    methods: list[str] = msgspec.field(default_factory=lambda: ["GET", "HEAD"])
    max_in_flight: int = 32  # copies waiting for an answer; one more is dropped
    timeout: float = 5.0  # a copy without a whole answer by then is cut off and dropped
    noise_percent: float = 10.0  # share of copies also sent to the stable release again
    ignore: list[str] = msgspec.field(default_factory=list)  # JSON paths not compared
    compare_values: bool = False  # also report values that differ (value_changed)
    window: float = 3600.0  # seconds: rollout.require_clean_shadow looks this far back
    max_routes: int = 100  # route labels of the diff counters; further routes are "other"


class BrownoutConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A window in which a deprecated element is refused as after its sunset (README:
    "Enforcement and brownouts"). One-off: ``start`` and ``end``. Recurring, in UTC: ``every``
    (``day`` or a weekday), ``at`` (``"HH:MM"``) and ``for`` (``15m``, ``1h``, ``90s``)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    every: str | None = None
    at: str | None = None
    for_: str | None = msgspec.field(default=None, name="for")
    percent: float = 100.0  # the share of clients refused in the window (sticky per client)


class DeprecationConfig(_Frozen, frozen=True, kw_only=True):
    id: str
    # Exactly one of the four kinds below is set.
    field: str | None = None  # response field, JSON path: user.role, items[].role, meta.*.x
    endpoint: str | None = None  # "GET /v0/users/{id}" (method optional: "/v0/users/{id}")
    param: str | None = None  # query parameter name
    request_field: str | None = None  # JSON request body path
    on: str | None = None  # optional "METHOD /path/{template}" restricting where it applies
    # RFC 9745 needs the date. YAML may give a date (00:00 UTC) or a timestamp; the loader
    # normalizes both to an aware UTC datetime before conversion.
    deprecated: dt.datetime
    sunset: dt.datetime | None = None
    link: str | None = None  # Link: <link>; rel="deprecation"
    sunset_link: str | None = None  # Link: <sunset_link>; rel="sunset"
    replacement: str | None = None  # named in the optional Warning header
    # Refuse the element (410, 400, or remove the field) after the sunset: "after_sunset".
    enforce: Literal["never", "after_sunset"] = "never"
    brownouts: list[BrownoutConfig] = msgspec.field(default_factory=list)
    exempt: list[str] = msgspec.field(default_factory=list)  # client ids never refused


class TelemetryConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    max_body_bytes: int = 8 * 1024 * 1024  # JSON bodies above this are not inspected
    warning_header: bool = False  # Warning: 299 - "deprecated: user.role (use user.roles)"
    report_days: int = 30  # the report's window ("used in the last N days")
    retention_days: int = 400  # ledger rows older than this are pruned
    flush_seconds: float = 2.0  # ledger batch interval
    # One ledger for a fleet: postgresql://user@host:5432/db (default: SQLite in state_dir).
    ledger: str | None = None
    replica: str | None = None  # this replica's id in that ledger (default: the hostname)
    spool_max_rows: int = 100_000  # rows kept locally while the database is away (merged past)
    # Responses with a strong ETag already inspected are not held or parsed again: what was
    # found is remembered for this many representations (0: inspect every response).
    etag_cache: int = 4096


class FieldsConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Field selection (``proxy.deprecation.fields``): clients name the fields they read."""

    mode: str = "off"  # "off" (ignored, costs nothing), "prune" or "declare" (count only)
    header: str = "X-Fields"  # the request header carrying the field list
    query_param: str | None = None  # e.g. "fields": also read from the query (still forwarded)
    status_header: str = "X-Fields-Pruned"  # response header: "yes" or "no; reason=..."
    # JSON bodies above this are not pruned (None: telemetry.max_body_bytes, the most held).
    max_body_bytes: int | None = None


class JournalConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Writes the candidate served, kept to be replayed after a rollback (``proxy.journal``)."""

    enabled: bool = True
    # Bodies up to this are kept (replayable); a longer one only as its SHA-256. One over
    # telemetry.max_body_bytes is not copied by the data plane at all: neither body nor digest.
    max_body_bytes: int = 1024 * 1024
    # Authorization, Cookie, Proxy-Authorization and clients.api_key_header are redacted
    # unless this is true (replay can add a service token instead).
    keep_credentials: bool = False
    retention_days: int = 30  # entries older than this are deleted
    max_entries: int = 100_000  # and beyond this many, the oldest
    queue_size: int = 10_000  # entries waiting for the writer; beyond it, dropped and counted
    flush_seconds: float = 0.2  # batch interval (at most 1 s: an entry is on disk by then)


class LoggingConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Log lines and the access log (``proxy.logs``): one line per event and per request."""

    format: str = "text"  # "text" (a terminal), "json" or "logfmt"
    level: str = "info"  # debug, info, warning, error (SWITCHBACK_LOG_LEVEL wins when set)
    access: bool = True  # one line per request
    file: str | None = None  # appended to; None: standard output
    buffer: int = 10_000  # lines waiting for the writer; beyond it, dropped and counted


class CoordinationConfig(_Frozen, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A fleet's shared traffic state in Redis (``proxy.fleet``); absent: standalone."""

    redis: str  # redis://[user:password@]host:port/db (rediss:// for TLS); never logged whole
    key: str = "switchback"  # prefix of every Redis key this fleet uses
    replica: str | None = None  # this replica's id in the fleet view; default hostname:port
    lease_seconds: float = 3.0  # the leader's lease: a new leader takes over once it lapses
    poll_seconds: float = 1.0  # read the shared state this often even without a notice


class Config(_Frozen, frozen=True, kw_only=True):
    listen: str = "127.0.0.1:8080"
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    state_dir: str = "./state"
    releases: dict[str, ReleaseConfig]
    traffic: TrafficConfig = msgspec.field(default_factory=TrafficConfig)
    clients: ClientsConfig = msgspec.field(default_factory=ClientsConfig)
    upstream: UpstreamConfig = msgspec.field(default_factory=UpstreamConfig)
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    rollout: RolloutConfig = msgspec.field(default_factory=RolloutConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
    deprecations: list[DeprecationConfig] = msgspec.field(default_factory=list)
    shadow: ShadowConfig | None = None
    fields: FieldsConfig = msgspec.field(default_factory=FieldsConfig)
    journal: JournalConfig = msgspec.field(default_factory=JournalConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    coordination: CoordinationConfig | None = None
    # Where the config came from (set by the loader, not read from YAML).
    source: str = "<memory>"
