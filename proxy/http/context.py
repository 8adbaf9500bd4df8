"""What the data plane needs from the rest of Switchback, and what its parts need of each other.

``Context`` is provided by the assembly (``proxy.app.runtime.Runtime``): its attributes are
replaced whole when the config or the traffic split changes, never edited in place. The data
plane imports no feature: which release a client goes to is the pipeline's business, and where
a refused connection may go instead is asked of ``failover``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

import msgspec

from proxy.http.tunnel import TunnelRegistry
from proxy.http.upstream import Link, Upstream
from proxy.pipeline import Pipeline


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """The data plane's settings, from the config (``proxy.app.settings.listener_settings``)."""

    response_timeout: float = 30.0  # request sent, no response head: 504
    read_timeout: float = 60.0  # the release silent mid-response (or not reading): cut / 504
    inspect_cap: int = 8 * 1024 * 1024
    served_by: bool = True
    trust_forwarded: bool = False
    keepalive_timeout: float = 75.0  # idle client connections are closed after this
    head_timeout: float = 60.0  # a request head not complete: 408
    body_timeout: float = 60.0  # no request body bytes: 408
    send_timeout: float = 60.0  # a client not taking response bytes: cut off
    max_head_bytes: int = 64 * 1024
    max_headers: int = 100
    max_target_bytes: int = 8 * 1024
    max_body_bytes: int | None = None
    max_connections: int = 4096
    max_in_flight: int = 1024
    max_loop_lag: float = 0.5
    retry_after: int = 1


class Context(Protocol):
    """What the data plane needs from the runtime."""

    loop: asyncio.AbstractEventLoop
    pipeline: Pipeline
    settings: Settings
    tunnels: TunnelRegistry

    @property
    def upstream(self) -> Upstream: ...

    def failover(self, release: str) -> str | None:
        """Where a request goes when ``release`` refused the connection: the other release
        when it carries traffic, else None."""
        ...

    def upstream_error(self, release: str, kind: str) -> None: ...

    def rejected(self, reason: str) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]: ...


class Client(Protocol):
    """What an exchange needs of its client connection (``proxy.http.connection``)."""

    PAUSE_UPSTREAM: int
    peer_bytes: bytes
    http10: bool
    draining: bool
    write_paused: bool
    paused: int

    def write(self, data: bytes) -> None: ...
    def writelines(self, parts: tuple[bytes, ...]) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self, reason: int) -> None: ...
    def resume_reading(self, reason: int) -> None: ...
    def exchange_finished(self, fwd: Any, reusable: bool) -> None: ...
    def start_tunnel(self, release: str, link: Link, rest: bytes) -> None: ...
