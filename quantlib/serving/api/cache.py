"""Response caches for the results API: in-process by default, Redis when ``REDIS_URL`` is set
(shared by every API process, with a 2-second in-process first level for hot keys).

Keys carry the results store's version token (see
:meth:`quantlib.results.view.ResultsView.version`), so a publish makes every key that
depends on it unreachable at once; entries also expire after ``ttl`` seconds.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from typing import Protocol

__all__ = ["ResponseCache", "MemoryCache", "RedisCache", "TieredCache", "make_cache"]

log = logging.getLogger(__name__)


class ResponseCache(Protocol):
    """What the API needs from a cache: async get/set of bytes by string key."""

    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """A bounded LRU cache in this process, entries expire after ``ttl`` seconds.

    Examples
    --------
    >>> import asyncio, threading
    >>> cache = MemoryCache(max_entries=2)
    >>> async def demo():
    ...     await cache.set("a", b"1"); await cache.set("b", b"2"); await cache.set("c", b"3")
    ...     return await cache.get("a"), await cache.get("c")
    >>> out = []  # a thread of its own: the caller may already run an event loop
    >>> t = threading.Thread(target=lambda: out.append(asyncio.run(demo()))); t.start(); t.join()
    >>> out[0]
    (None, b'3')
    """

    name = "memory"

    def __init__(self, *, max_entries: int = 4096, ttl: float = 300.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        hit = self._data.get(key)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._data.pop(key, None)
            return None
        self._data.move_to_end(key)
        return hit[1]

    async def set(self, key: str, value: bytes) -> None:
        self._data[key] = (time.monotonic() + self.ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """A shared cache in Redis (``redis.asyncio``); entries expire after ``ttl`` seconds."""

    name = "redis"

    def __init__(self, url: str, *, ttl: float = 300.0, prefix: str = "quantlib:api:") -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.ttl = ttl
        self.prefix = prefix
        # a bounded, blocking pool: bursts wait for a connection instead of failing
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64, timeout=10)
        self._client = aioredis.Redis(connection_pool=pool)

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(self.prefix + key)
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(self, key: str, value: bytes) -> None:
        await self._client.set(self.prefix + key, value, ex=max(1, int(self.ttl)))

    async def close(self) -> None:
        await self._client.aclose()


class TieredCache:
    """A short-lived in-process cache in front of a shared one (Redis).

    Keys carry the store's version token, so an entry can never be stale in content; the
    first level only saves the Redis round trip (and redis-py's per-command cost) for
    hot keys, for ``l1_ttl`` seconds.
    """

    def __init__(self, shared: ResponseCache, *, l1_ttl: float = 2.0,
                 l1_entries: int = 1024) -> None:
        self.shared = shared
        self.local = MemoryCache(max_entries=l1_entries, ttl=l1_ttl)
        self.name = shared.name

    async def get(self, key: str) -> bytes | None:
        hit = await self.local.get(key)
        if hit is None:
            hit = await self.shared.get(key)
            if hit is not None:
                await self.local.set(key, hit)
        return hit

    async def set(self, key: str, value: bytes) -> None:
        await self.local.set(key, value)
        await self.shared.set(key, value)

    async def close(self) -> None:
        await self.local.close()
        await self.shared.close()


def make_cache(redis_url: str | None = None, *, ttl: float = 300.0) -> ResponseCache:
    """Redis when ``redis_url`` (or ``REDIS_URL``) is set, else an in-process cache.

    Examples
    --------
    >>> make_cache(None).name
    'memory'
    """
    url = redis_url or os.environ.get("REDIS_URL")
    if url:
        log.info("results API cache: redis at %s", url.split("@")[-1])
        return TieredCache(RedisCache(url, ttl=ttl))
    return MemoryCache(ttl=ttl)
