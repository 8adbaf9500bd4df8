"""The fleet's keys in Redis, and the only code that talks to it (``redis.asyncio``).

Keys, under the configured prefix ``K``:

    K:state     hash: version, data (the ``SharedState`` as JSON), written only by ``CAS``
    K:changes   pub/sub channel: the new version, published by ``CAS`` in the same script
    K:leader    string: the leader's replica id, with a lease (SET NX PX; renewed by RENEW)
    K:replicas  hash: replica id -> heartbeat JSON (the fleet view)
    K:stats     hash: replica id -> window counts JSON (what the leader sums)

Compare-and-set is a Lua script, atomic in Redis: it writes only when the stored version is
the one the writer read (0: none yet) and announces the new version on the channel. Every
call is bounded by the client's socket timeouts; a failure raises ``redis.RedisError`` or
``OSError`` for the caller (``proxy.fleet.coordinator``) to treat as "Redis is away".
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from proxy.core.fleetstate import SharedState, decode, encode

# KEYS[1] state hash, KEYS[2] channel; ARGV[1] expected version, ARGV[2] new version, ARGV[3]
# data. Returns {1, new} when written, {0, current} when the stored version is another.
CAS = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return {0, current} end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'data', ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return {1, tonumber(ARGV[2])}
"""
# KEYS[1] leader key; ARGV[1] replica id, ARGV[2] lease in ms. 1: still ours, extended.
RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
TIMEOUT_S = 0.5  # every call to Redis: connect and answer within this


class Store:
    def __init__(self, url: str, key: str) -> None:
        self.key = key
        self.state_key = f"{key}:state"
        self.channel = f"{key}:changes"
        self.leader_key = f"{key}:leader"
        self.replicas_key = f"{key}:replicas"
        self.stats_key = f"{key}:stats"
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=TIMEOUT_S,
            socket_connect_timeout=TIMEOUT_S,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self._cas = self.client.register_script(CAS)
        self._renew = self.client.register_script(RENEW)
        self._release = self.client.register_script(RELEASE)

    async def read(self) -> SharedState | None:
        """The shared state, or None when there is none. A stored value that cannot be read
        raises ``ValueError`` (msgspec's errors are ValueErrors)."""
        data = await self.client.hget(self.state_key, "data")
        return None if data is None else decode(data)

    async def compare_and_set(self, state: SharedState, expect: int) -> tuple[bool, int]:
        """Write ``state`` if the stored version is ``expect``: (written, version stored)."""
        ok, version = await self._cas(
            keys=[self.state_key, self.channel], args=[expect, state.version, encode(state)]
        )
        return bool(ok), int(version)

    async def hold_lease(self, replica: str, lease_ms: int, leading: bool) -> bool:
        """Renew the lease when ``leading``, else try to take it; True while it is ours."""
        if leading and await self._renew(keys=[self.leader_key], args=[replica, lease_ms]):
            return True
        taken = await self.client.set(self.leader_key, replica, nx=True, px=lease_ms)
        return bool(taken)

    async def leader(self) -> str | None:
        found = await self.client.get(self.leader_key)
        return None if found is None else _text(found)

    async def release_lease(self, replica: str) -> None:
        await self._release(keys=[self.leader_key], args=[replica])

    async def publish_beat(self, replica: str, beat: bytes, stats: bytes) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.replicas_key, replica, beat)
        pipe.hset(self.stats_key, replica, stats)
        await pipe.execute()

    async def forget(self, replica: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hdel(self.replicas_key, replica)
        pipe.hdel(self.stats_key, replica)
        await pipe.execute()

    async def all_stats(self) -> list[bytes]:
        found = await self.client.hgetall(self.stats_key)
        return [_bytes(v) for v in found.values()]

    async def all_beats(self) -> dict[str, bytes]:
        found = await self.client.hgetall(self.replicas_key)
        return {_text(k): _bytes(v) for k, v in found.items()}

    def pubsub(self) -> Any:
        return self.client.pubsub(ignore_subscribe_messages=True)

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
