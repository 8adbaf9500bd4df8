"""The read buffers release connections hand uvloop (``proxy.http.reads``): one per thread, since
each event loop reads in its own thread and uvloop reads without the GIL."""

from __future__ import annotations

import threading

from proxy.http import reads


def test_a_thread_keeps_its_buffer() -> None:
    first = reads.buffer()
    assert reads.buffer() is first
    assert len(first) == reads.SIZE
    assert not first.readonly  # uvloop asks for a writable buffer


def test_two_threads_never_share_a_buffer() -> None:
    seen: list[memoryview] = []
    thread = threading.Thread(target=lambda: seen.append(reads.buffer()))
    thread.start()
    thread.join()
    mine = reads.buffer()
    assert seen and seen[0] is not mine
    assert seen[0].obj is not mine.obj  # not two views of one bytearray either
