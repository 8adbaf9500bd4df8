"""Replaying the journal to a release: in order, once, through the upstream seam.

``replay`` sends the entries the other release wrote (since ``since``, oldest first) to ``to``
one at a time, each on a fresh connection of the running proxy's ``Upstream``
(``proxy.http.pool.Pools``: the bytes go out as ``entry.replay_request`` made them, byte for
byte; no client library normalizes the target). Each result is one dict:

    {"id", "method", "target", "idempotency_key", "status": 201}      sent, answered
    {..., "error": "..."}         sent, but no answer (timed out, cut off, invalid): marked
                                  replayed all the same, since the release may have applied it
    {..., "refused": "..."}       not replayable (body over the cap, or not received whole)
    {..., "skipped": "..."}       replayed before (``again`` sends it anyway)
    {..., "not_sent": "..."}      the connection could not be opened: the replay stops there,
                                  so that later entries never overtake it, and the entry stays
                                  unreplayed; or not attempted after such a stop

A dry run reports what would be sent (``"would_send": true``) and sends and marks nothing.
Only one replay runs at a time (a lock): the next one sees the first one's marks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from proxy.errors import UpstreamUnavailable
from proxy.http.upstream import Fields, Upstream
from proxy.journal.entry import Entry, replay_request
from proxy.journal.journal import Journal
from proxy.journal.store import Stored


class _Answer:
    """A ``Sink`` that keeps the status and waits for the end of the response."""

    def __init__(self) -> None:
        self.request_done = False
        self.status: int | None = None
        self.error: str | None = None
        self.unavailable = False
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _end(self, error: str | None = None) -> None:
        if error is not None and self.error is None:
            self.error = error
        if not self.ended.done():
            self.ended.set_result(None)

    def up_unavailable(self, exc: UpstreamUnavailable) -> None:
        self.unavailable = True
        self._end(str(exc))

    def up_interim(self, status: int, reason: bytes, headers: Fields) -> None:
        return None

    def up_head(self, status: int, reason: bytes, headers: Fields) -> None:
        self.status = status

    def up_body(self, data: bytes) -> None:
        return None

    def up_flush(self) -> None:
        return None

    def up_complete(self, trailers: Fields | None, clean: bool) -> None:
        self._end()

    def up_upgrade(self, rest: bytes) -> None:
        self._end()

    def up_lost(self, got_bytes: bool) -> None:
        self._end("the connection closed before the response ended")

    def up_invalid(self, problem: str) -> None:
        self._end(f"invalid response: {problem}")

    def up_pause_writing(self) -> None:
        return None

    def up_resume_writing(self) -> None:
        return None


async def send(
    upstream: Upstream, release: str, data: bytes, method: str, timeout: float
) -> _Answer:
    """Send ``data`` (one whole request) to ``release`` on a fresh connection."""
    answer = _Answer()
    call = upstream.open(release, answer, head_only=method == "HEAD", fresh=True)
    if call is None:
        answer.unavailable = True
        answer.error = f"{release} has as many requests in flight as it may have"
        return answer
    call.write(data)
    answer.request_done = True
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(answer.ended)
    except TimeoutError:
        answer.error = f"no complete response within {timeout:g} s"
        call.abort()
        return answer
    if answer.error is not None:
        call.abort()
    else:
        call.finish()
    return answer


def describe(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "release": entry.release,
        "method": entry.method,
        "target": entry.target.decode("latin-1"),
        "idempotency_key": entry.idempotency_key,
    }


async def replay(
    journal: Journal,
    upstream: Upstream,
    to: str,
    *,
    since: float | None,
    dry_run: bool,
    again: bool,
    headers: Sequence[tuple[bytes, bytes]],
    trust_forwarded: bool,
    timeout: float,
) -> dict[str, Any]:
    async with journal.replay_lock:
        rows = await journal.read(since=since, not_release=to)
        results = []
        stopped: str | None = None
        try:
            for done, row in enumerate(rows):
                journal.replaying = (done, len(rows))  # what GET /status shows
                result = describe(row.entry)
                results.append(result)
                why = _why_not(row, again, stopped)
                if why is not None:
                    result.update(why)
                    continue
                if dry_run:
                    result["would_send"] = True
                    continue
                data = replay_request(row.entry, headers, trust_forwarded)
                answer = await send(upstream, to, data, row.entry.method, timeout)
                if answer.unavailable:
                    stopped = f"not attempted: #{row.entry.id} could not be sent"
                    result["not_sent"] = answer.error
                    continue
                await journal.mark(row.entry.id, to, answer.status, answer.error)
                if answer.status is not None:
                    result["status"] = answer.status
                if answer.error is not None:
                    result["error"] = answer.error
        finally:
            journal.replaying = None
    return {"to": to, "dry_run": dry_run, "since": since, "results": results, **_totals(results)}


def _why_not(row: Stored, again: bool, stopped: str | None) -> dict[str, str] | None:
    if row.entry.refused is not None:
        return {"refused": row.entry.refused}
    if row.replayed_at is not None and not again:
        return {"skipped": f"replayed to {row.replayed_to} before (again: send it anyway)"}
    if stopped is not None:
        return {"not_sent": stopped}
    return None


def _totals(results: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "sent": sum(1 for r in results if "status" in r or "error" in r),
        "failed": sum(1 for r in results if "error" in r or "not_sent" in r),
        "refused": sum(1 for r in results if "refused" in r),
        "skipped": sum(1 for r in results if "skipped" in r),
        "would_send": sum(1 for r in results if r.get("would_send")),
    }
