"""Where uvloop reads what releases send: one buffer for the whole process.

A connection that has asyncio's ``BufferedProtocol`` methods (``get_buffer`` and
``buffer_updated``, which uvloop takes without the base class) is read straight into the buffer
it hands out, instead of into a new ``bytes`` object per read: a response body is then copied
once in user space (by httptools, into what ``on_body`` passes on) instead of twice. One buffer
serves every connection because nothing refers to it after a read: the loop parses each read
before it reads again, httptools hands its callbacks copies, and what a connection keeps or
relays raw (bytes after a 101, a tunnel's traffic) it copies first.

Release connections read this way (``proxy.http.release``). Client connections do not: their
reads are mostly small requests, for which the two calls cost more than a new ``bytes`` (a 1 KB
request took about 3,000 more instructions with both sides reading here, against 600 fewer
with the release side alone; ``loadtest/instructions.py``).
"""

from __future__ import annotations

from typing import Final

SIZE: Final = 256 * 1024  # as uvloop's own read buffer
BUFFER: Final = memoryview(bytearray(SIZE))
