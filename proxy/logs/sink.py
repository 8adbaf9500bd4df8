"""The bounded buffer between the request path and the log's file, and the thread that writes.

``put`` is all the request path does: one ``len`` and one ``deque.append`` of a record (both
atomic under the GIL, so no lock), or of a batch of ``Encoded`` access lines. When
``capacity`` lines are waiting (the file or pipe is not taking lines: a full disk, a reader that
stopped) what comes is dropped and counted in ``Tally.dropped``; a batch is taken while fewer
wait, so the buffer holds at most a batch more than ``capacity``. The writer thread wakes every
``INTERVAL`` seconds (a wake-up per line would cost the request path a lock), formats what
waits (``Format.lines``) and writes it with one ``os.write``, which releases the GIL: a sink
that blocks stops this thread only.

The writer takes the GIL as seldom as it can. uvloop runs its loop without the GIL and takes
it for each callback, so while another thread waits for the GIL every callback's release of it
can become a hand-over between the threads, a futex wake-up and a context switch that the
request path pays for. The writer formats up to ``BATCH`` records between two writes.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque

from proxy.logs.lines import Encoded, Format, Record

BATCH = 4096  # records formatted between two writes (about 1 MB of JSON lines)
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
        fmt: Format,
        capacity: int,
        tally: Tally,
        close_fd: bool,
    ) -> None:
        self.fd = fd
        self.format = fmt  # replaced whole on reload
        self.capacity = capacity
        self.close_fd = close_fd
        self.queue: deque[Record] = deque()
        # The lines of the ``Encoded`` batches in the queue: what puts added (the event loop)
        # and what the writer took, each counted by one thread alone.
        self.batched_in = 0
        self.batched_out = 0
        self.tally = tally
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="switchback-log", daemon=True)

    def put(self, record: Record) -> None:
        queue = self.queue
        if len(queue) + self.batched_in - self.batched_out < self.capacity:
            if type(record) is Encoded:
                self.batched_in += record.lines - 1
            queue.append(record)
        else:
            self.tally.dropped += record.lines if type(record) is Encoded else 1

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
            popleft = queue.popleft
            records = [popleft() for _ in range(min(BATCH, len(queue)))]
            count = len(records)
            for record in records:
                if type(record) is Encoded:
                    count += record.lines - 1
            fmt = self.format
            try:
                data = fmt.lines(records)
            except Exception:  # a record that cannot be shown must not stop the log
                data = b"".join([_line(fmt, record) for record in records])
            self.batched_out += count - len(records)
            self._write(data, count)

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


def _line(fmt: Format, record: Record) -> bytes:
    try:
        return fmt.line(record)
    except Exception as exc:
        return f"switchback: unprintable log record: {exc!r}\n".encode()
