"""The data plane compiled to C: which modules, and what their code must respect for it.

``make`` compiles the modules of ``MODULES`` with mypyc (``tools/native.py``) when the machine
has a C compiler and Python's headers, into extension modules beside their sources, which
Python then imports instead of them; without a compiler the same modules run as Python. The
compiled code is the same code with its annotations enforced: a value of another type than
declared raises ``TypeError`` where Python would carry on, and the test suite runs against
both builds (``SWITCHBACK_PURE_PYTHON=1`` imports the sources even where compiled modules
exist; ``proxy/__init__.py``).

What the compiled classes need:
- No interpreted base class. ``ClientConnection`` and ``UpstreamConnection`` implement
  asyncio's protocol methods without naming ``asyncio.Protocol`` (which uvloop never checks),
  and ``factory`` gives asyncio's type checker the factory it expects.
- An attribute keeps one type in a class and its subclasses; no attribute is added from
  outside the class.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import cast

# Compiled together, in one shared library (``proxy/http/_native__mypyc*``): the path of a
# proxied request from the client's bytes to the release's and back, with the client's
# identification and the counters and windows it updates.
MODULES = (
    "proxy.http.http1",
    "proxy.http.response",
    "proxy.http.request_body",
    "proxy.http.forward",
    "proxy.http.release",
    "proxy.http.guard",
    "proxy.http.connection",
    "proxy.http.pool",
    "proxy.http.upstream",
    "proxy.http.context",
    "proxy.http.refusals",
    "proxy.http.failures",
    "proxy.traffic.clients",
    "proxy.core.window",
    "proxy.metric_tables",
)
GROUP = "proxy.http._native"  # the name of the shared library's module


def factory(make: Callable[[], object]) -> Callable[[], asyncio.BaseProtocol]:
    """``make`` as the protocol factory asyncio's types expect (see the module's text)."""
    return cast("Callable[[], asyncio.BaseProtocol]", make)


def compiled() -> bool:
    """Whether the data plane runs compiled (its modules were imported from extensions)."""
    module = sys.modules.get("proxy.http.connection")
    path = getattr(module, "__file__", None) or ""
    return not path.endswith(".py")
