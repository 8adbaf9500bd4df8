"""Searching bytes for a short needle: the C library's ``strstr`` or ``memmem``.

The skim (``proxy.core.typedscan``) asks whether a JSON key such as ``"role"`` occurs in an
array's bytes. ``bytes.find`` skips badly on the quote a key starts with, which recurs all
through JSON; glibc's ``memmem`` takes a third of its time, and glibc's ``strstr``, which is
vectorised, an eighth of ``memmem``'s (87 KB: ~63, ~22 and ~3 us; ``loadtest/inspection.py``).
``strstr`` stops at a NUL byte, so it answers for a text and a needle that hold none: a bytes
object always ends with one, and JSON text never holds one (a NUL in a string is escaped; the
skim's bytes were validated). A text or needle with a NUL goes to ``memmem``; without a C
library, to ``bytes.__contains__``.

``has_escape`` looks for a JSON escape (a backslash and a letter), a two-byte needle that the
bytes' own search and ``memmem`` both handle slowly.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Callable


def _search() -> Callable[[bytes, bytes], bool]:
    try:
        libc = ctypes.CDLL(None)
        memmem, strstr = libc.memmem, libc.strstr
    except (OSError, AttributeError):  # no such C library: CPython's own search
        return bytes.__contains__
    memmem.restype = ctypes.c_void_p
    memmem.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
    strstr.restype = ctypes.c_void_p
    strstr.argtypes = [ctypes.c_char_p, ctypes.c_char_p]

    def contains(text: bytes, needle: bytes) -> bool:
        if b"\0" in text or b"\0" in needle:  # memchr: about 1 us over 87 KB
            return memmem(text, len(text), needle, len(needle)) is not None
        return strstr(text, needle) is not None

    return contains


contains = _search()
"""``contains(text, needle)``: whether ``needle`` occurs in ``text``."""


UNICODE_ESCAPE = re.compile(rb"\\u")
SLASH_ESCAPE = re.compile(rb"\\/")


def has_escape(text: bytes, escape: re.Pattern[bytes]) -> bool:
    """Whether ``text`` holds ``escape`` (``UNICODE_ESCAPE``, ``SLASH_ESCAPE``). Most JSON
    holds no backslash at all, which ``memchr`` tells at once; where it holds some, ``re``
    finds the pair in about half the time ``bytes.find`` or ``memmem`` take with a two-byte
    needle (87 KB with 2,000 backslashes: ~35 against ~80 us)."""
    return b"\\" in text and escape.search(text) is not None
