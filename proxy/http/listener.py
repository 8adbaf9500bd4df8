"""The traffic listener: the client socket, one ``ClientConnection`` per client, one sweep.

Every path belongs to the app: nothing answers a request itself except for the proxy's own
refusals (``proxy.errors.Refused``: a malformed request 400, a limit 413/414/431, a timeout
408, overload 503, the proxy's own failure 500), a release's failures (502/504, from
``proxy.http.forward``) and a step's ``Reply``.

The sweep runs every ``SWEEP_SECONDS``: it measures how late the event loop runs (load
shedding) and checks every connection's timeouts, so that no request needs a timer of its
own. ``drain`` is the graceful stop.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from proxy.http.connection import ClientConnection
from proxy.http.context import Context
from proxy.http.native import factory

log = logging.getLogger("switchback.listener")

SWEEP_SECONDS = 0.1  # resolution of every timeout, and of the loop-lag measurement
SHED_HOLD = 1.0  # once the loop fell behind, new requests are refused for at least this long


class Listener:
    """The traffic socket and its connections; ``drain`` implements the graceful stop."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.connections: set[ClientConnection] = set()
        self.server: asyncio.Server | None = None
        self.draining = False
        self._idle_waiter: asyncio.Future[None] | None = None
        # Load shedding: how late the last sweep ran, and whether new requests are refused.
        self.loop_lag = 0.0
        self.shedding = False
        self._shed_until = 0.0

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        make = factory(lambda: ClientConnection(self))
        loop = self.ctx.loop
        if sock is not None:
            self.server = await loop.create_server(make, sock=sock, backlog=1024)
        else:
            self.server = await loop.create_server(
                make, host, port, backlog=1024, reuse_address=True
            )
        self.ctx.spawn(self._sweeper())

    async def _sweeper(self) -> None:
        """Every ``SWEEP_SECONDS``: measure how late the loop runs (load shedding), then check
        every connection's timeouts. A failure on one connection is logged and that
        connection cut; the sweep itself never stops."""
        loop = self.ctx.loop
        due = loop.time() + SWEEP_SECONDS
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            now = loop.time()
            settings = self.ctx.settings
            self.measure_lag(now - due, now, settings.max_loop_lag)
            due = now + SWEEP_SECONDS
            for conn in list(self.connections):
                try:
                    conn.sweep(now, settings)
                except Exception:
                    log.exception("sweep failed on a connection from %s; closing it", conn.peer)
                    conn.abort()

    def measure_lag(self, lag: float, now: float, limit: float) -> None:
        """A loop running ``lag`` seconds late sheds new requests (503) for at least
        ``SHED_HOLD`` seconds, so that what is already in flight can finish."""
        self.loop_lag = max(0.0, lag)
        if lag > limit:
            if not self.shedding:
                log.warning("event loop %.0f ms behind: refusing new requests", lag * 1000)
            self._shed_until = now + SHED_HOLD
        self.shedding = now < self._shed_until

    @property
    def port(self) -> int:
        assert self.server is not None  # noqa: S101 - only called after start()
        return int(self.server.sockets[0].getsockname()[1])

    def in_flight(self) -> int:
        return sum(1 for c in self.connections if c.active is not None or c.tunnel is not None)

    def connection_closed(self) -> None:
        if self._idle_waiter is not None and not self.connections:
            if not self._idle_waiter.done():
                self._idle_waiter.set_result(None)

    async def drain(self, timeout: float) -> int:
        """Stop accepting, let in-flight exchanges finish (up to ``timeout``), then close the
        rest. Returns the number of connections that had to be cut."""
        self.draining = True
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.drain()
        if self.connections:
            self._idle_waiter = self.ctx.loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._idle_waiter), timeout)
            except TimeoutError:
                pass
        cut = len(self.connections)
        for conn in list(self.connections):
            conn.abort()
        return cut
