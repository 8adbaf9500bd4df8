"""The access log's pipeline step: one record per finished exchange, placed last.

Its ``done`` hook appends one tuple to the sink (``proxy.logs.sink``) and builds no text: the
writer thread formats it (``proxy.logs.lines``). The deprecation finding is taken from the slot
the runtime names (the deprecation step's ``FOUND``), so this step imports no feature.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from proxy.logs.lines import ACCESS, Record
from proxy.pipeline import Exchange, Slot, Step


class AccessLog(Step):
    name = "access_log"

    def __init__(
        self, put: Callable[[Record], None], clock: Callable[[], float], found: Slot[Any] | None
    ) -> None:
        self.put = put
        self.clock = clock  # the loop's, as ``Exchange.started``
        self.found = found
        self.wall = time.time

    def done(self, ex: Exchange) -> None:
        slots = ex.slots
        found = self.found
        self.put(
            (
                ACCESS,
                self.wall(),
                ex.peer,
                ex.client_id,
                ex.release,
                ex.method,
                ex.target,
                ex.status,
                self.clock() - ex.started,
                ex.bytes_in,
                ex.bytes_out,
                slots.get(found) if slots is not None and found is not None else None,
                ex.outcome,
            )
        )
