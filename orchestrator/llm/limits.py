"""Per-app limits of the LLM connector: token buckets shared by every API process through Redis.

Two buckets per app: requests per minute (one token a request) and LLM tokens per day (the prompt
estimate is taken before the call; the difference to the provider's count is settled after it and
may leave the bucket in debt, which refuses the next calls until it refills). One Lua script does
refill-and-take atomically on Redis's own clock, so any number of processes share one budget.
Without Redis (the embedded default) the same arithmetic runs in process memory.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass

import redis
import redis.asyncio as aredis

from orchestrator.logs import get_logger

KEY_PREFIX = "llm:bucket:"
log = get_logger(__name__)

# KEYS[1] bucket; ARGV: capacity, refill per second, cost, force (1: take even into debt).
# Returns {allowed (0/1), seconds until `cost` would be available (string), tokens left (string)}.
_TAKE = """
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local force = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil then tokens = cap; ts = now end
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if force == 1 or tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 60)
return {allowed, tostring(wait), tostring(tokens)}
"""


@dataclass(frozen=True)
class Take:
    """The answer of a bucket: allowed or not, and when to retry."""

    allowed: bool
    retry_after: float
    left: float


class _MemoryBuckets:
    def __init__(self) -> None:
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, capacity: float, rate: float, cost: float, force: bool) -> Take:
        with self._lock:
            now = time.monotonic()
            tokens, ts = self._state.get(key, (capacity, now))
            tokens = min(capacity, tokens + max(0.0, now - ts) * rate)
            if force or tokens >= cost:
                self._state[key] = (tokens - cost, now)
                return Take(True, 0.0, tokens - cost)
            self._state[key] = (tokens, now)
            return Take(False, (cost - tokens) / rate, tokens)


class Buckets:
    """Token buckets on Redis (shared) or in memory (one process)."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._memory = _MemoryBuckets()
        self._clients: dict[int, aredis.Redis] = {}
        self._scripts: dict[int, object] = {}

    def _script(self) -> object:
        # A redis.asyncio client (and its registered script) is bound to the loop it first ran on.
        loop_id = id(asyncio.get_running_loop())
        script = self._scripts.get(loop_id)
        if script is None:
            assert self.redis_url is not None
            client = aredis.Redis.from_url(self.redis_url, socket_timeout=2)
            self._clients[loop_id] = client
            script = client.register_script(_TAKE)
            self._scripts[loop_id] = script
        return script

    async def take(self, key: str, *, capacity: float, rate: float, cost: float = 1.0, force: bool = False) -> Take:
        """Take `cost` from bucket `key` (capacity, refill `rate` per second); refused when short."""
        if self.redis_url is None:
            return self._memory.take(key, capacity, rate, cost, force)
        script = self._script()
        try:
            raw = await script(keys=[KEY_PREFIX + key], args=[capacity, rate, cost, 1 if force else 0])  # type: ignore[operator]
        except (redis.RedisError, OSError) as exc:
            # Limits are a guard rail, not a gate: an unreachable Redis falls back to this process's buckets.
            log.warning("LLM limit buckets unreachable; counting in this process", error=str(exc))
            return self._memory.take(key, capacity, rate, cost, force)
        allowed, wait, left = raw
        return Take(bool(int(allowed)), float(wait), float(left))

    async def close(self) -> None:
        """Close the Redis clients of the running loop."""
        loop_id = id(asyncio.get_running_loop())
        client = self._clients.pop(loop_id, None)
        self._scripts.pop(loop_id, None)
        if client is not None:
            await client.aclose()


def retry_after_header(seconds: float) -> str:
    """A Retry-After value in whole seconds (at least 1)."""
    return str(max(1, math.ceil(seconds)))


DAY_SECONDS = 86_400.0
MINUTE_SECONDS = 60.0


async def take_requests(buckets: Buckets, app_id: str, per_minute: int) -> Take:
    """One request of `app_id` against its requests per minute."""
    return await buckets.take(f"rpm:{app_id}", capacity=per_minute, rate=per_minute / MINUTE_SECONDS)


async def take_tokens(buckets: Buckets, app_id: str, tokens_per_day: int, estimate: int) -> Take:
    """`estimate` LLM tokens of the app's day (an estimate over the day's size is capped at the size)."""
    cost = min(estimate, tokens_per_day)
    return await buckets.take(f"tpd:{app_id}", capacity=tokens_per_day, rate=tokens_per_day / DAY_SECONDS, cost=cost)


async def settle_tokens(buckets: Buckets, app_id: str, tokens_per_day: int, actual: int, estimate: int) -> None:
    """Charge the difference between the provider's token count and the estimate taken before."""
    diff = actual - min(estimate, tokens_per_day)
    if diff:
        await buckets.take(
            f"tpd:{app_id}", capacity=tokens_per_day, rate=tokens_per_day / DAY_SECONDS, cost=diff, force=True
        )
