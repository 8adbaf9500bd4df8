"""The access log's pipeline step: one line per finished exchange, placed last.

Its ``done`` hook fills an ``AccessLine`` in the form the JSON line shows, and builds no text.
Where the format encodes a batch of access lines in one call (JSON lines, through msgspec:
about 0.1 µs a line), the step gathers them on the event loop and hands the sink
(``proxy.logs.sink``) a batch of ``Encoded`` lines every ``BATCH`` lines, or ``interval``
(``INTERVAL``) after the first line of a batch. So the lines do not cross to the writer
thread as objects, whose memory would then travel between the two threads' cores. In another
format the sink gets each ``AccessLine``, and its writer thread formats it. ``flush`` hands over
what waits: ``LogOutput.access_step`` calls it when the pipeline is replaced, and
``LogOutput.close`` before the log stops. The deprecation finding is taken from the slot the
runtime names (the deprecation step's ``FOUND``), so this step imports no feature.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from proxy.logs.lines import AccessLine, Encoded, Record, deprecated_ids
from proxy.logs.values import IsoTimes, safe_target
from proxy.pipeline import Exchange, Slot, Step

BATCH = 512  # access lines per batch
INTERVAL = 0.05  # seconds the first line of a batch waits at most


class AccessLog(Step):
    name = "access_log"

    def __init__(
        self,
        put: Callable[[Record], None],
        clock: Callable[[], float],
        found: Slot[Any] | None,
        encode: Callable[[list[AccessLine]], bytes] | None = None,
        call_later: Callable[[float, Callable[[], None]], object] | None = None,
    ) -> None:
        self.put = put
        self.clock = clock  # the loop's, as ``Exchange.started``
        self.found = found
        self.wall = time.time
        self.iso = IsoTimes()  # the event loop's
        # Batches only with an encoder and a loop to wait on.
        self.encode = encode if call_later is not None else None
        self.call_later = call_later
        self.interval = INTERVAL
        self.lines: list[AccessLine] = []

    def done(self, ex: Exchange) -> None:
        slots = ex.slots
        found = slots.get(self.found) if slots is not None and self.found is not None else None
        line = AccessLine(
            self.iso(self.wall()),
            "access",
            ex.peer,
            ex.client_id,
            ex.release,
            ex.method,
            safe_target(ex.target),
            ex.status,
            round((self.clock() - ex.started) * 1000.0, 3),
            ex.bytes_in,
            ex.bytes_out,
            deprecated_ids(found) if found is not None else (),
            ex.outcome,
        )
        if self.encode is None:
            self.put(line)
            return
        lines = self.lines
        lines.append(line)
        if len(lines) >= BATCH:
            self.flush()
        elif len(lines) == 1 and self.call_later is not None:
            self.call_later(self.interval, self.flush)

    def flush(self) -> None:
        """Hand the sink the lines gathered so far, encoded."""
        lines = self.lines
        encode = self.encode
        if lines and encode is not None:
            self.lines = []
            self.put(Encoded(len(lines), encode(lines)))
