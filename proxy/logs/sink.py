"""The bounded buffer between the request path and the log's file, and the thread that writes.

``put`` is all the request path does: one ``len`` and one ``deque.append`` of a tuple (both
atomic under the GIL, so no lock). When ``capacity`` records are waiting (the file or pipe
is not taking lines: a full disk, a reader that stopped) the record is dropped and counted in
``Tally.dropped``. The writer thread wakes every ``interval`` seconds (a wake-up per line would cost
the request path a lock), formats what waits in batches and writes each batch with one
``os.write``, which releases the GIL: a sink that blocks stops this thread only.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

from proxy.logs.lines import Record

BATCH = 256  # records formatted between writes: the GIL goes back to the loop that often
INTERVAL = 0.05


class Tally:
    """What every sink of one output wrote, dropped and failed to write (a reload keeps it)."""

    __slots__ = ("written", "dropped", "failed")

    def __init__(self) -> None:
        self.written = 0
        self.dropped = 0
        self.failed = 0  # lines lost to a write error (e.g. the file's disk is full)


class Sink:
    """Lines to one file descriptor, off the event loop."""

    def __init__(
        self,
        fd: int,
        format_line: Callable[[Record], bytes],
        capacity: int,
        tally: Tally,
        close_fd: bool,
    ) -> None:
        self.fd = fd
        self.format_line = format_line  # replaced whole on reload
        self.capacity = capacity
        self.close_fd = close_fd
        self.queue: deque[Record] = deque()
        self.tally = tally
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="switchback-log", daemon=True)

    def put(self, record: Record) -> None:
        queue = self.queue
        if len(queue) < self.capacity:
            queue.append(record)
        else:
            self.tally.dropped += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Write what waits (for up to ``timeout``: a sink that blocks keeps the rest)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.close_fd and not self._thread.is_alive():
            try:
                os.close(self.fd)
            except OSError:
                pass

    def _run(self) -> None:
        while True:
            stopping = self._stop.wait(INTERVAL)
            self.drain()
            if stopping:
                return

    def drain(self) -> None:
        """Format and write every record waiting now (the writer thread's job)."""
        queue = self.queue
        while queue:
            lines: list[bytes] = []
            for _ in range(min(BATCH, len(queue))):
                record = queue.popleft()
                try:
                    lines.append(self.format_line(record))
                except Exception as exc:  # a record that cannot be shown must not stop the log
                    lines.append(f"switchback: unprintable log record: {exc!r}\n".encode())
            self._write(b"".join(lines), len(lines))

    def _write(self, data: bytes, count: int) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:  # a non-blocking descriptor that is full: wait, retry
                if self._stop.is_set():
                    self.tally.failed += count
                    return
                time.sleep(INTERVAL)
                continue
            except OSError:
                self.tally.failed += count
                return
            view = view[n:]
        self.tally.written += count
