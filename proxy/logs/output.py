"""Where the log goes, in which format, at which level: the ``logging:`` section carried out.

``LogOutput`` owns the sink (``proxy.logs.sink``) and the ``logging`` handler. ``open`` (at
start-up) and ``prepare`` (on reload) open ``logging.file`` and raise ``ConfigError`` naming
the key and the file when it cannot be opened, before anything changes; ``apply`` switches.
A changed file, or the same path moved away (log rotation), gets a fresh sink; a changed format,
level or buffer applies to the sink in place. In the process (``switchback run``) the handler
takes over the root logger, so every line, Switchback's or a library's, has the configured
format; embedded (tests), it is added to the ``switchback`` logger and leaves the rest alone.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any

from proxy.errors import ConfigError
from proxy.logs.access import AccessLog
from proxy.logs.handler import SinkHandler
from proxy.logs.lines import FORMATS, Format, Record
from proxy.logs.metrics import LogMetrics
from proxy.logs.refusals import RefusalLimiter
from proxy.logs.sink import Sink, Tally
from proxy.pipeline import Slot
from proxy.schema import LoggingConfig

LEVEL_ENV = "SWITCHBACK_LOG_LEVEL"
refusal_log = logging.getLogger("switchback.refusals")


def level_of(config: LoggingConfig) -> int:
    name = os.environ.get(LEVEL_ENV) or config.level
    level = logging.getLevelName(name.upper())
    return level if isinstance(level, int) else logging.INFO


class LogOutput:
    def __init__(self, metrics: LogMetrics) -> None:
        self.config = LoggingConfig()
        self.tally = Tally()
        metrics.counts = lambda: (self.tally.written, self.tally.dropped, self.tally.failed)
        self.sink: Sink | None = None
        self.handler = SinkHandler(self.route, logging.INFO)
        self.limiter = RefusalLimiter()
        self._logger: logging.Logger | None = None
        self._level_before = logging.NOTSET
        self.taken_over = False
        self.access: AccessLog | None = None  # the current pipeline's access step

    def route(self, record: Record) -> None:
        """``record`` to the current sink (the one a reload opened, once it did)."""
        sink = self.sink
        if sink is not None:
            sink.put(record)

    @property
    def format(self) -> Format:
        return FORMATS[self.config.format]

    def access_step(
        self, loop: asyncio.AbstractEventLoop, found: Slot[Any] | None
    ) -> AccessLog | None:
        """The access log's step for a new pipeline (None with ``logging.access`` off); what
        the step before it gathered goes to the log first."""
        if self.access is not None:
            self.access.flush()
        self.access = None
        if self.config.access:
            fmt = self.format
            self.access = AccessLog(self.route, loop.time, found, fmt.access_lines, loop.call_later)
        return self.access

    # -- start-up and reload --
    def open(self, config: LoggingConfig) -> None:
        self.apply(config, self.prepare(config))
        if self.taken_over:
            self._attach_root()
        else:
            self._attach(logging.getLogger("switchback"))

    def prepare(self, config: LoggingConfig) -> Sink | None:
        """A new sink when ``config`` writes somewhere else (None: the current one stays)."""
        sink = self.sink
        if sink is not None and config.file == self.config.file and not _moved(config, sink):
            return None
        fmt = FORMATS[config.format]
        if config.file is None:
            return Sink(1, fmt, config.buffer, self.tally, close_fd=False)
        try:
            fd = os.open(config.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            detail = exc.strerror or str(exc)
            raise ConfigError(f"logging.file: {config.file!r} cannot be opened: {detail}") from None
        return Sink(fd, fmt, config.buffer, self.tally, close_fd=True)

    def discard(self, pending: Sink | None) -> None:
        if pending is not None:
            pending.stop()

    def apply(self, config: LoggingConfig, pending: Sink | None) -> None:
        old = self.sink
        sink = pending if pending is not None else old
        if sink is None:
            raise RuntimeError("LogOutput.apply before a sink was prepared")
        if pending is not None:
            pending.start()
            self.sink = pending
            if old is not None:  # what it still holds is written by its own thread, then it ends
                threading.Thread(target=old.stop, name="switchback-log-retire", daemon=True).start()
        sink.format = FORMATS[config.format]
        sink.capacity = config.buffer
        self.config = config
        level = level_of(config)
        self.handler.setLevel(level)
        if self._logger is not None:
            self._logger.setLevel(level)

    def _attach(self, logger: logging.Logger) -> None:
        self._detach()
        self._level_before = logger.level
        logger.addHandler(self.handler)
        logger.setLevel(self.handler.level)
        self._logger = logger

    def _detach(self) -> None:
        if self._logger is not None:
            self._logger.removeHandler(self.handler)
            self._logger.setLevel(self._level_before)
            self._logger = None

    def take_over(self) -> None:
        """Every logger's lines through this output, and no other handler (the process): call
        it before ``open``. Lines logged before ``open`` go where they went before."""
        self.taken_over = True

    def _attach_root(self) -> None:
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        self._attach(root)

    def stop(self) -> None:
        """Write what waits and stop (a process that took over keeps it until ``close``)."""
        if not self.taken_over:
            self.close()

    def close(self) -> None:
        if self.access is not None:
            self.access.flush()
        self._detach()
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.stop()

    # -- refusals: a line per reason per second at most --
    def refused(self, reason: str) -> None:
        suppressed = self.limiter.note(reason, time.monotonic())
        if suppressed is not None:
            _refusal_line(reason, suppressed)

    def tick(self) -> None:
        """The suppressed refusals' counts that are due (the runtime's ticker calls it)."""
        for reason, count in self.limiter.due(time.monotonic()):
            _refusal_line(reason, count, summary=True)


def _refusal_line(reason: str, suppressed: int, summary: bool = False) -> None:
    fields = {"reason": reason, "suppressed": suppressed}
    if summary:
        refusal_log.info("%d more %s refusal(s) in the last second", suppressed, reason,
                         extra={"event": "refused_more", "fields": fields})  # fmt: skip
    else:
        more = f" ({suppressed} more not logged)" if suppressed else ""
        refusal_log.info("refused a request: %s%s", reason, more,
                         extra={"event": "refused", "fields": fields})  # fmt: skip


def _moved(config: LoggingConfig, sink: Sink) -> bool:
    """The file at ``config.file`` is no longer the one the sink writes (rotated, removed)."""
    if config.file is None:
        return False
    try:
        return os.stat(config.file).st_ino != os.fstat(sink.fd).st_ino
    except OSError:
        return True
