"""The configs of the servers the benchmark starts: the upstream, the nginx front, Switchback.

    upstream nginx   blue, green            static JSON files, no ETag (most JSON APIs send none)
                     blue-etag, green-etag  the same files with nginx's strong ETags
                     status                 stub_status (requests answered)
    nginx front      split_clients 90/10 on X-Client-Id, keep-alive pools ─▶ blue | green
    Switchback       the same split (sticky hash) ─▶ blue | green (rules-etag: the -etag pair)

Switchback variants: ``plain`` (no rules); ``rules``: ``user.role`` (present) and
``items[].role`` (absent from every item, while the key ``"role"`` occurs in ``user``);
``rules-hit``: ``items[].id``, a path that hits in every element; ``rules-etag``: the two rules
of ``rules`` on the upstream that sends ETags, with ``telemetry.etag_cache`` on (the default),
so a representation inspected once is not parsed again; ``fields``: the two rules of ``rules``
with ``fields.mode: prune``, every request sending ``X-Fields: user(id,name,role),items(id)``
(Switchback decodes, prunes and encodes each body: at 100KB the answer keeps the 1,000 item ids);
``plain-logged``: ``plain`` with the access log on, JSON lines to a file in the work directory
(every other variant turns ``logging.access`` off).
"""

from __future__ import annotations

import os
from pathlib import Path

HOST = "127.0.0.1"
CLIENT_HEADER = "X-Client-Id"
VARIANTS: dict[str, tuple[str, ...]] = {  # variant: response-field rules
    "plain": (),
    "rules": ("user.role", "items[].role"),
    "rules-hit": ("items[].id",),
    "rules-etag": ("user.role", "items[].role"),
    "fields": ("user.role", "items[].role"),
    "plain-logged": (),
}
ETAG_VARIANTS = frozenset({"rules-etag"})  # served by the upstream pair that sends ETags
FIELD_VARIANTS = frozenset({"fields"})  # prune mode; wrk sends FIELDS_HEADER: FIELDS
# The access log on, as JSON lines to a file; every other variant runs with logging.access off,
# so that their figures stay comparable with runs from before the access log existed.
LOGGED_VARIANTS = frozenset({"plain-logged"})
FIELDS_HEADER = "X-Fields"
FIELDS = "user(id,name,role),items(id)"


def _nginx_main(name: str, work: Path) -> str:
    # Run as root (a container, CI), nginx would start its workers as "nobody", who cannot read
    # the private temp dir; keep them as the invoking user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    tmp = work / f"{name}-tmp"
    tmp.mkdir(exist_ok=True)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""{user}worker_processes 1;
daemon off;
pid {work / name}.pid;
error_log {work / name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    # Both sides keep connections for the whole run (nginx's default closes after 1000).
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{temp_paths}
"""


def _status_server(port: int) -> str:
    return f"""    server {{
        listen {HOST}:{port};
        location / {{ stub_status; }}
    }}
"""


def upstream_nginx_conf(
    work: Path, site: Path, ports: dict[str, int], etag_ports: dict[str, int], status: int
) -> str:
    """``ports`` and ``etag_ports``: release -> port, without and with ETags."""
    servers = "".join(
        f"""    server {{
        listen {HOST}:{port};
        root {site / release};
        etag {"on" if etag else "off"};
        add_header X-Release {release};
    }}
"""
        for etag, table in ((False, ports), (True, etag_ports))
        for release, port in table.items()
    )
    return (
        _nginx_main("upstream", work)
        + """    types { }
    default_type application/json;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=64;
"""
        + servers
        + _status_server(status)
        + "}\n"
    )


def front_nginx_conf(work: Path, listen: int, ports: dict[str, int], status: int) -> str:
    # split_clients hashes with MurmurHash2 and Switchback with BLAKE2b, so the two fronts send
    # different clients to green; both send 10% of them, and both upstreams serve the same bytes.
    return (
        _nginx_main("front", work)
        + f"""    split_clients "${{http_x_client_id}}" $release {{
        10% green;
        *   blue;
    }}
    # 1024 idle connections per release, as Switchback's upstream.pool_size default.
    upstream blue {{ server {HOST}:{ports["blue"]}; keepalive 1024; keepalive_requests 1000000; }}
    upstream green {{ server {HOST}:{ports["green"]}; keepalive 1024; keepalive_requests 1000000; }}
    server {{
        listen {HOST}:{listen};
        location / {{
            proxy_pass http://$release;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Room for a whole 100 KB body in memory: nginx's default buffers (8 x 4 KB) would
            # spill it to a temp file on disk, which would measure the disk, not the proxy.
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
            proxy_max_temp_file_size 0;
            add_header X-Served-By $release always;
        }}
    }}
"""
        + _status_server(status)
        + "}\n"
    )


def switchback_conf(
    work: Path, variant: str, listen: int, admin: int, ports: dict[str, int]
) -> str:
    rules = "".join(
        f"""  - id: {field.replace("[]", "").replace(".", "-")}
    field: {field}
    deprecated: 2025-01-01
    sunset: 2027-01-01
    link: https://api.example.com/docs/deprecations/{field.replace("[]", "")}
"""
        for field in VARIANTS[variant]
    )
    deprecations = f"deprecations:\n{rules}" if rules else ""
    if variant in FIELD_VARIANTS:
        deprecations += "fields:\n  mode: prune\n"
    if variant in LOGGED_VARIANTS:
        logging = f"logging: {{format: json, file: {work / f'access-{variant}.log'}}}\n"
    else:
        logging = "logging: {access: false}\n"
    return f"""# Generated by loadtest/bench.py: variant "{variant}".
listen: {HOST}:{listen}
admin:
  listen: {HOST}:{admin}
  token: bench-token
state_dir: {work / f"state-{variant}"}
releases:
  blue: {{url: "http://{HOST}:{ports["blue"]}"}}
  green: {{url: "http://{HOST}:{ports["green"]}"}}
traffic:
  stable: blue
  weights: {{blue: 90, green: 10}}
clients:
  id_header: {CLIENT_HEADER}
{logging}{deprecations}"""
