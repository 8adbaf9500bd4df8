"""Where uvloop reads what releases send: one buffer per thread, not one per read.

A connection that has asyncio's ``BufferedProtocol`` methods (``get_buffer`` and
``buffer_updated``, which uvloop takes without the base class) is read straight into the buffer
it hands out, instead of into a new ``bytes`` object per read: a response body is then copied
once in user space (by httptools, into what ``on_body`` passes on) instead of twice. One
buffer serves every connection of a thread because nothing refers to it after a read: the loop
parses each read before it reads again, httptools hands its callbacks copies, and what a
connection keeps or relays raw (bytes after a 101, a tunnel's traffic) it copies first.

Each thread has its buffer (``buffer()``), taken by a connection when it is made: a
connection is read by the event loop that made it, and uvloop runs its loop without the GIL
between taking a buffer and handing over what was read into it, so two loops in two threads of
one process must not share one.

Release connections read this way (``proxy.http.release``). Client connections do not: their
reads are mostly small requests, for which the two calls cost more than a new ``bytes`` (a 1 KB
request took about 3,000 more instructions with both sides reading here, against 600 fewer
with the release side alone; ``loadtest/instructions.py``).
"""

from __future__ import annotations

import threading
from typing import Final

SIZE: Final = 256 * 1024  # as uvloop's own read buffer
_THREAD = threading.local()


def buffer() -> memoryview:
    """The calling thread's read buffer, made on first use."""
    view: memoryview | None = getattr(_THREAD, "view", None)
    if view is None:
        view = memoryview(bytearray(SIZE))
        _THREAD.view = view
    return view
