"""The ``logging`` handler every Switchback log line goes through, into the log's sink.

A record becomes a ``LOG`` tuple (``proxy.logs.lines``): its message is rendered here, since
its arguments may change later, and so is a traceback; the formatting of the line waits for
the writer thread. ``extra={"event": name, "fields": {...}}`` makes a structured event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from proxy.logs.lines import LOG, Record


class SinkHandler(logging.Handler):
    def __init__(self, put: Callable[[Record], None], level: int) -> None:
        super().__init__(level)
        self.put = put  # the sink's, replaced when the sink is

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            exc = None
            if record.exc_info:
                exc = logging.Formatter().formatException(record.exc_info)
            elif record.exc_text:
                exc = record.exc_text
            event = getattr(record, "event", None)
            fields = getattr(record, "fields", None)
            self.put(
                (
                    LOG,
                    record.created,
                    record.levelname,
                    record.name,
                    message,
                    event if isinstance(event, str) else None,
                    dict(fields) if isinstance(fields, dict) else None,
                    exc,
                )
            )
        except Exception:
            self.handleError(record)


def event(name: str, **fields: object) -> dict[str, object]:
    """``extra=`` for a structured event: ``log.info("...", extra=event("reload", ok=True))``."""
    return {"event": name, "fields": fields}
