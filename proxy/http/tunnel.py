"""Upgraded connections (WebSocket): raw bytes relayed both ways between client and release.

The relay does not interpret the protocol, except that it follows the frame boundaries of what
the release sends, so that when a release is taken out of production (rollback) the proxy can
send the client a well-formed Close frame with code 1012 ("service restart") between two frames,
and the client reconnects, to the stable release.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Protocol

from proxy.http.upstream import Link

log = logging.getLogger("switchback.tunnel")

SERVICE_RESTART = 1012


class FrameTracker:
    """Follows RFC 6455 frame boundaries in one direction of a byte stream."""

    __slots__ = ("buf", "remaining")

    def __init__(self) -> None:
        self.buf = b""
        self.remaining = 0

    @property
    def at_boundary(self) -> bool:
        return not self.buf and self.remaining == 0

    def feed(self, data: bytes) -> None:
        i, n = 0, len(data)
        while i < n:
            if self.remaining:
                take = min(self.remaining, n - i)
                self.remaining -= take
                i += take
                continue
            had = len(self.buf)
            hdr = self.buf + data[i : i + 14]
            if len(hdr) < 2:
                self.buf, i = hdr, n
                break
            length = hdr[1] & 0x7F
            size = 2 + (2 if length == 126 else 8 if length == 127 else 0)
            size += 4 if hdr[1] & 0x80 else 0
            if len(hdr) < size:
                self.buf, i = hdr, n
                break
            if length == 126:
                length = int.from_bytes(hdr[2:4], "big")
            elif length == 127:
                length = int.from_bytes(hdr[2:10], "big")
            self.buf = b""
            i += size - had
            self.remaining = length


def close_frame(code: int, reason: str) -> bytes:
    """An unmasked (server-to-client) Close frame."""
    payload = struct.pack("!H", code) + reason.encode()[:120]
    return bytes([0x88, len(payload)]) + payload


class Client(Protocol):
    """What a tunnel needs of its client connection."""

    PAUSE_UPSTREAM: int
    transport: asyncio.Transport | None

    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...
    def pause_reading(self, reason: int) -> None: ...
    def resume_reading(self, reason: int) -> None: ...


class _UpstreamSide(asyncio.Protocol):
    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        self.tunnel.from_upstream(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.upstream_lost()

    def pause_writing(self) -> None:
        self.tunnel.client.pause_reading(self.tunnel.client.PAUSE_UPSTREAM)

    def resume_writing(self) -> None:
        self.tunnel.client.resume_reading(self.tunnel.client.PAUSE_UPSTREAM)


class Tunnel:
    def __init__(
        self,
        client: Client,
        up: Link,
        release: str,
        registry: TunnelRegistry,
    ) -> None:
        self.client = client
        self.up = up
        self.release = release
        self.registry = registry
        self.tracker = FrameTracker()
        self.closed = False
        registry.add(self)

    def upstream_side(self) -> asyncio.Protocol:
        return _UpstreamSide(self)

    def from_client(self, data: bytes) -> None:
        self.up.write(data)

    def from_upstream(self, data: bytes) -> None:
        if self.closed:
            return
        self.tracker.feed(data)
        self.client.write(data)

    def pause_upstream(self) -> None:
        if self.up.transport is not None:
            self.up.transport.pause_reading()

    def resume_upstream(self) -> None:
        if self.up.transport is not None:
            self.up.transport.resume_reading()

    def upstream_lost(self) -> None:
        self._end()
        if self.client.transport is not None:
            self.client.transport.close()

    def client_lost(self) -> None:
        self._end()
        self.up.close()

    def close_for_restart(self) -> None:
        """Tell the client to reconnect (1012) and close both sides."""
        if self.closed:
            return
        self._end()
        self.up.abort()
        if self.tracker.at_boundary:
            self.client.write(close_frame(SERVICE_RESTART, "release taken out of service"))
            if self.client.transport is not None:
                self.client.transport.close()
        else:
            self.client.abort()

    def _end(self) -> None:
        if not self.closed:
            self.closed = True
            self.registry.discard(self)


class TunnelRegistry:
    """Open tunnels per release, so a rollback can close the candidate's."""

    def __init__(self) -> None:
        self.by_release: dict[str, set[Tunnel]] = {}

    def add(self, tunnel: Tunnel) -> None:
        self.by_release.setdefault(tunnel.release, set()).add(tunnel)

    def discard(self, tunnel: Tunnel) -> None:
        self.by_release.get(tunnel.release, set()).discard(tunnel)

    def count(self, release: str) -> int:
        return len(self.by_release.get(release, ()))

    def close_release(self, release: str) -> int:
        tunnels = list(self.by_release.get(release, ()))
        for tunnel in tunnels:
            tunnel.close_for_restart()
        if tunnels:
            log.info("closed %d WebSocket tunnel(s) to %s with 1012", len(tunnels), release)
        return len(tunnels)
