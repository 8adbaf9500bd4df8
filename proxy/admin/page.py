"""The status page's HTML, rendered on the server from the admin API's own JSON answers.

One page, no script and no asset: inline CSS (allowed by its hash in the Content-Security-
Policy, ``CSP``), inline SVG charts (``proxy.admin.chart``), links for sorting the deprecation
table (``?sort=<column>&order=asc|desc``). Everything that comes from configuration or from
clients (client ids, release names and URLs, element paths, reasons) is HTML-escaped where it
is written, with ``_e``. Pure: dicts in, a string out.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import urlencode

from proxy.admin.chart import analysis_charts
from proxy.admin.views import describe_rollout
from proxy.core.rollout import IN_PROGRESS, PROMOTED

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:70em;padding:0 1em;color:#222}
h1{font-size:1.4em;margin:0}h2{font-size:1.1em;margin:1.4em 0 .4em;border-bottom:1px solid #ddd}
header{display:flex;justify-content:space-between;align-items:center}
table{border-collapse:collapse}td,th{padding:.2em .8em .2em 0;text-align:left;vertical-align:top}
th a{color:inherit}td.num{text-align:right}.muted{color:#777}.bad{color:#c92a2a}
.safe{color:#2b8a3e}progress{width:20em}figure{display:inline-block;margin:0 1em 0 0}
figcaption{font-weight:600}form.inline{display:inline}
"""
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()}'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# The deprecation table's columns: (key, heading, sort key of one row).
Row = dict[str, Any]
COLUMNS: tuple[tuple[str, str, Callable[[Row], Any]], ...] = (
    ("id", "ID", lambda r: r["id"]),
    ("kind", "Kind", lambda r: r["kind"]),
    ("element", "Element", lambda r: r["element"]),
    ("sunset", "Sunset", lambda r: r["sunset_at_unix"] or 0.0),
    ("clients", "Clients", lambda r: len(r["clients"])),
    ("last_seen", "Last seen", lambda r: _last_seen(r) or 0.0),
    ("verdict", "Verdict", lambda r: r["verdict"]),
)
SORTS = tuple(key for key, _, _ in COLUMNS)
SHOWN_CLIENTS = 6  # client ids named in a row; all of them in its tooltip


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def render_page(
    status: dict[str, Any],
    history: dict[str, Any],
    events: dict[str, Any],
    report: dict[str, Any] | str,
    *,
    sort: str = "id",
    order: str = "asc",
    logout: bool = False,
) -> str:
    """The whole page. ``report`` is the deprecation report, or why it cannot be read."""
    rollout = status.get("rollout") or {}
    uptime = round(status.get("uptime_seconds") or 0)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>Switchback status</title>',
        f'<meta name="viewport" content="width=device-width"><style>{CSS}</style></head><body>',
        "<header><h1>Switchback</h1><div>",
        f'<a href="/">refresh</a> <span class="muted">uptime {_e(_num(uptime))} s</span>',
        '<form class="inline" method="post" action="/logout"><button>Log out</button></form>'
        if logout
        else "",
        "</div></header>",
        "<h2>Traffic</h2>",
        _traffic(status),
        "<h2>Pinned clients</h2>",
        _pins(status.get("pins") or {}),
        "<h2>Rollout</h2>",
        _rollout(rollout, status.get("candidate")),
        f'<h2>Analysis <span class="muted">(over {_e(_num(status.get("window_seconds")))} s windows'
        f", sampled every {_e(_num(history.get('every_seconds')))} s)</span></h2>",
        analysis_charts(history.get("samples") or []),
        "<h2>Deprecations</h2>",
        _report(report, sort, order),
        "<h2>Recent events</h2>",
        _events(events.get("events") or []),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _traffic(status: dict[str, Any]) -> str:
    roles = {status.get("stable"): "stable", status.get("candidate"): "candidate"}
    rows = []
    for name, rel in (status.get("releases") or {}).items():
        p99 = rel.get("p99_ms")
        rows.append(
            f'<tr data-release="{_e(name)}"><td>{_e(name)}</td><td>{_e(roles.get(name, ""))}</td>'
            f'<td>{_e(rel.get("url"))}</td><td class="num weight">{_e(_num(rel.get("weight")))}%'
            f'</td><td class="num">{_e(rel.get("in_flight"))}</td>'
            f'<td class="num">{_e(rel.get("rate_per_s"))}</td>'
            f'<td class="num">{_e(_num(100 * float(rel.get("error_rate") or 0)))}%</td>'
            f'<td class="num">{"-" if p99 is None else _e(p99)} ms</td></tr>'
        )
    table = _table(
        "releases", ["Release", "Role", "URL", "Weight", "In flight", "Req/s", "5xx", "p99"], rows
    )
    notes = [f"Traffic from: {_e(status.get('source'))}"]
    if status.get("out_of_service"):
        notes.append(f"out of service: <b>{_e(status['out_of_service'])}</b>")
    if status.get("persisted") is False:
        notes.append(
            f'<span class="bad">not saved to {_e(status.get("state_file"))}: '
            f"{_e(status.get('persist_error'))}</span>"
        )
    return table + f"<p>{'; '.join(notes)}</p>"


def _pins(pins: dict[str, str]) -> str:
    if not pins:
        return '<p class="muted">No client is pinned.</p>'
    rows = [
        f'<tr data-client="{_e(client)}"><td>{_e(client)}</td><td>{_e(release)}</td></tr>'
        for client, release in sorted(pins.items())
    ]
    return _table("pins", ["Client", "Release"], rows)


def _rollout(rollout: dict[str, Any], candidate: Any) -> str:
    if not rollout:
        return '<p class="muted">No rollout.</p>'
    steps = rollout.get("steps") or []
    step = rollout.get("step")
    progress = ""
    state = rollout.get("state")
    if steps and isinstance(step, int) and (state in IN_PROGRESS or state == PROMOTED):
        done = len(steps) if state == PROMOTED else min(step + 1, len(steps))
        progress = (
            f'<p><progress id="rollout-progress" value="{done}" max="{len(steps)}"></progress> '
            f"steps {_e(', '.join(f'{s:g}%' for s in steps))}</p>"
        )
    return (
        f'<p id="rollout" data-state="{_e(rollout.get("state"))}">'
        f"{_e(describe_rollout(rollout, candidate))}</p>{progress}"
    )


def _report(report: dict[str, Any] | str, sort: str, order: str) -> str:
    if isinstance(report, str):
        return f'<p class="bad">The deprecation report cannot be read: {_e(report)}</p>'
    elements = list(report.get("elements") or [])
    if not elements:
        return '<p class="muted">No deprecated elements configured.</p>'
    key = dict((k, f) for k, _, f in COLUMNS).get(sort, COLUMNS[0][2])
    elements.sort(key=key, reverse=order == "desc")
    head = []
    for col, title, _ in COLUMNS:
        flip = "desc" if col == sort and order == "asc" else "asc"
        mark = (" ▲" if order == "asc" else " ▼") if col == sort else ""
        query = urlencode({"sort": col, "order": flip})
        head.append(f'<a href="/?{_e(query)}#deprecations">{_e(title)}</a>{mark}')
    rows = []
    for el in elements:
        seen = _last_seen(el)
        safe = "safe" if el.get("safe") else ""
        names = [str(c.get("client")) for c in el.get("clients") or []]
        clients = ", ".join(names[:SHOWN_CLIENTS])
        if len(names) > SHOWN_CLIENTS:
            clients += f" and {len(names) - SHOWN_CLIENTS} more"
        rows.append(
            f'<tr data-id="{_e(el["id"])}"><td>{_e(el["id"])}</td><td>{_e(el["kind"])}</td>'
            f"<td>{_e(el['element'])}</td><td>{_e((el.get('sunset_at') or '-')[:10])}</td>"
            f'<td title="{_e(", ".join(names))}">{len(names)}: {_e(clients) or "-"}'
            f"</td><td>{_e(_iso(seen) if seen else 'never')}</td>"
            f'<td class="{safe}">{_e(el["verdict"])}</td></tr>'
        )
    days = f'<p class="muted">Last {_e(report.get("days"))} days; sorted by {_e(sort)}.</p>'
    return _table("deprecations", head, rows, raw_head=True) + days


def _events(events: list[dict[str, Any]]) -> str:
    if not events:
        return '<p class="muted">No rollback, refused reload or refused request since start.</p>'
    rows = [
        f'<tr data-kind="{_e(ev["kind"])}"><td>{_e(_iso(ev["at"]))}</td><td>{_e(ev["kind"])}</td>'
        f'<td>{_e(ev["detail"])}</td><td class="num">{_e(ev["count"])}</td>'
        f"<td>{_e(_iso(ev['last_at']))}</td></tr>"
        for ev in events
    ]
    return _table("events", ["First", "Kind", "Detail", "Count", "Last"], rows)


def _table(tid: str, head: list[str], rows: list[str], raw_head: bool = False) -> str:
    cells = "".join(f"<th>{h if raw_head else _e(h)}</th>" for h in head)
    body = "\n".join(rows)
    return f'<table id="{tid}"><thead><tr>{cells}</tr></thead><tbody>\n{body}\n</tbody></table>'


def _last_seen(element: dict[str, Any]) -> float | None:
    seen = [c["last_seen_unix"] for c in element.get("clients") or [] if c.get("last_seen_unix")]
    return max(seen) if seen else None


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "-"


def login_page(message: str = "") -> str:
    """The login form: the admin or read token, once; the cookie then holds a session id."""
    note = f'<p class="bad" id="login-error">{_e(message)}</p>' if message else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Switchback: log in</title><style>{CSS}</style></head><body>"
        "<h1>Switchback</h1><p>The status page needs the admin read token (or the admin "
        f"token).</p>{note}"
        '<form method="post" action="/login"><label>Token <input type="password" '
        'name="token" autocomplete="current-password" autofocus></label> '
        "<button>Log in</button></form></body></html>"
    )
