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
from collections.abc import Callable
from typing import cast

# Compiled together, in one shared library (``proxy/http/_native__mypyc*``): the path of a
# proxied request from the client's bytes to the release's and back, the pipeline and the
# steps every request runs, the choice of a release and the rollout's sliding windows, the
# deprecation rules and the inspection of bodies, the counters and ledger batch a request
# updates, and the access log's step and how it shows times and targets. Not compiled:
# the modules whose class statements define msgspec Structs, since a compiled module loses a
# Struct's class options (``frozen``, ``kw_only``, ``array_like``) and refuses
# ``msgspec.field`` defaults (``msgspec.defstruct`` keeps them): ``proxy.http.context``,
# ``proxy.core.traffic_state`` and ``proxy.core.window_counts`` (the Structs of the routing and
# of the windows, apart so that those compile), ``proxy.logs.lines``; and everything off the
# request path, the access log's writer thread included.
MODULES = (
    "proxy.http.http1",
    "proxy.http.reads",
    "proxy.http.response",
    "proxy.http.request_body",
    "proxy.http.forward",
    "proxy.http.release",
    "proxy.http.guard",
    "proxy.http.connection",
    "proxy.http.pool",
    "proxy.http.upstream",
    "proxy.http.refusals",
    "proxy.http.failures",
    "proxy.traffic.clients",
    "proxy.core.routing",
    "proxy.core.window",
    "proxy.metric_tables",
    "proxy.pipeline",
    "proxy.deprecation.step",
    "proxy.core.deprecation_headers",
    "proxy.deprecation.ledger_memory",
    "proxy.core.labels",
    "proxy.traffic.steps",
    "proxy.journal.step",
    "proxy.deprecation.telemetry",
    "proxy.core.rules",
    "proxy.core.typedscan",
    "proxy.core.bodyinspect",
    "proxy.deprecation.ledger",
    "proxy.logs.values",
    "proxy.logs.access",
)
GROUP = "proxy.http._native"  # the name of the shared library's module


def factory(make: Callable[[], object]) -> Callable[[], asyncio.BaseProtocol]:
    """``make`` as the protocol factory asyncio's types expect (see the module's text)."""
    return cast("Callable[[], asyncio.BaseProtocol]", make)
