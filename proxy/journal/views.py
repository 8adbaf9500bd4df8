"""The journal as JSON (the admin API's answers) and as text (the CLI): pure functions.

Bytes become text as latin-1, which maps every byte to one character and back: a target or a
header value in the JSON is the raw bytes, whatever they are. A redacted header has the value
null. Bodies are not in the listing (their size and SHA-256 are).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from proxy.core.report import columns
from proxy.journal.store import Stored


def stored_to_json(row: Stored) -> dict[str, Any]:
    e = row.entry
    return {
        "id": e.id,
        "time": e.time,
        "client": e.client,
        "release": e.release,
        "method": e.method,
        "target": e.target.decode("latin-1"),
        "headers": [
            [n.decode("latin-1"), None if v is None else v.decode("latin-1")] for n, v in e.headers
        ],  # fmt: skip
        "body_size": e.body_size,
        "body_sha256": e.body_sha256,
        "replayable": e.refused is None,
        "refused": e.refused,
        "status": e.status,
        "outcome": e.outcome,
        "idempotency_key": e.idempotency_key,
        "replayed": None
        if row.replayed_at is None
        else {
            "at": row.replayed_at,
            "to": row.replayed_to,
            "status": row.replay_status,
            "error": row.replay_error,
        },
    }


def when(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_list(answer: dict[str, Any]) -> str:
    entries = answer.get("entries") or []
    if not entries:
        return f"no journal entries ({answer.get('file', 'journal')})"
    header = ["ID", "TIME", "RELEASE", "CLIENT", "REQUEST", "STATUS", "BODY", "IDEMPOTENCY-KEY",
              "REPLAYED"]  # fmt: skip
    rows = [header]
    for e in entries:
        size = e.get("body_size")
        body = "-" if size is None else f"{size} B"
        if not e.get("replayable"):
            body += " (not replayable)"
        done = e.get("replayed")
        replayed = "-"
        if isinstance(done, dict):
            result = done.get("status") if done.get("status") is not None else done.get("error")
            replayed = f"to {done.get('to')}: {result}"
        rows.append([
            f"#{e.get('id')}", when(e.get("time")), str(e.get("release")), str(e.get("client")),
            f"{e.get('method')} {e.get('target')}", str(e.get("status") or "-"), body,
            str(e.get("idempotency_key") or "-"), replayed,
        ])  # fmt: skip
    lines = columns(rows, right=frozenset({5}))
    lines.append(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    return "\n".join(lines)


def format_replay(answer: dict[str, Any]) -> str:
    to = answer.get("to")
    lines = []
    for r in answer.get("results") or []:
        key = r.get("idempotency_key")
        what = f"#{r.get('id')} {r.get('method')} {r.get('target')}"
        what += f" (Idempotency-Key {key})" if key else ""
        if "refused" in r:
            lines.append(f"{what}: refused, not replayable: {r['refused']}")
        elif "skipped" in r:
            lines.append(f"{what}: skipped, {r['skipped']}")
        elif "not_sent" in r:
            lines.append(f"{what}: not sent: {r['not_sent']}")
        elif r.get("would_send"):
            lines.append(f"{what}: would be sent to {to}")
        elif "error" in r:
            status = f" after status {r['status']}" if "status" in r else ""
            lines.append(f"{what}: error{status}: {r['error']}")
        else:
            lines.append(f"{what}: {to} answered {r.get('status')}")
    if answer.get("dry_run"):
        lines.append(f"dry run: {answer.get('would_send', 0)} would be sent to {to}, "
                     f"{answer.get('refused', 0)} refused, {answer.get('skipped', 0)} "
                     "replayed before; nothing sent")  # fmt: skip
    else:
        lines.append(f"replayed to {to}: {answer.get('sent', 0)} sent, {answer.get('failed', 0)} "
                     f"failed, {answer.get('refused', 0)} refused, {answer.get('skipped', 0)} "
                     "replayed before")  # fmt: skip
    return "\n".join(lines)


def rollback_line(answer: dict[str, Any]) -> str | None:
    """The rollback's journal line: how many writes the rolled-back release made."""
    journal = answer.get("journal")
    if not isinstance(journal, dict):
        return None
    n = journal.get("entries", 0)
    release, to = journal.get("release"), journal.get("replay_to")
    text = f"journal:  {release} wrote {n} journaled request{'' if n == 1 else 's'} since "
    text += when(journal.get("since"))
    if journal.get("dropped"):
        text += f" ({journal['dropped']} not journaled: the queue was full)"
    if n:
        text += "; see them with `switchback journal list`, replay with "
        text += f"`switchback journal replay --to {to} --dry-run`"
    return text
