"""Per-app limits of the LLM connector: token buckets shared by every API process through Redis.

Two buckets per app: requests per minute (one token a request) and LLM tokens per day (the prompt
estimate is taken before the call; the difference to the provider's count is settled after it and
may leave the bucket in debt, which refuses the next calls until it refills). One Lua script does
refill-and-take atomically on Redis's own clock, so any number of processes share one budget, and
takes every bucket of a call in the same round trip (`take_call`): all of them, or none when one
is short. Without Redis (the embedded default) the same arithmetic runs in process memory.
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


# KEYS: the buckets; ARGV: capacity, refill per second, cost, force (1: take even into debt) per bucket.
# Every bucket is refilled and checked first; only if none is short are all of them taken, so a
# call refused by one bucket costs nothing from the others. Returns {allowed (0/1), the 1-based
# index of the bucket that refused (0 when allowed), seconds until it would allow (string)}.
_TAKE_ALL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 4
  local cap = tonumber(ARGV[base + 1])
  local rate = tonumber(ARGV[base + 2])
  local cost = tonumber(ARGV[base + 3])
  local force = tonumber(ARGV[base + 4])
  local v = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(v[1])
  local ts = tonumber(v[2])
  if tokens == nil then tokens = cap; ts = now end
  tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
  if force ~= 1 and tokens < cost then
    return {0, i, tostring((cost - tokens) / rate)}
  end
  levels[i] = tokens - cost
end
for i, key in ipairs(KEYS) do
  local base = (i - 1) * 4
  redis.call('HSET', key, 'tokens', tostring(levels[i]), 'ts', tostring(now))
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[base + 1]) / tonumber(ARGV[base + 2])) + 60)
end
return {1, 0, '0'}
"""


@dataclass(frozen=True)
class Bucket:
    """One bucket of a call: its key, capacity, refill per second, and what the call takes from it."""

    key: str
    capacity: float
    rate: float
    cost: float = 1.0
    force: bool = False


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

    def take_all(self, buckets: list[Bucket]) -> tuple[Take, int]:
        with self._lock:
            now = time.monotonic()
            levels = []
            for index, b in enumerate(buckets):
                tokens, ts = self._state.get(b.key, (b.capacity, now))
                tokens = min(b.capacity, tokens + max(0.0, now - ts) * b.rate)
                if not b.force and tokens < b.cost:
                    return Take(False, (b.cost - tokens) / b.rate, tokens), index
                levels.append(tokens - b.cost)
            for b, level in zip(buckets, levels, strict=True):
                self._state[b.key] = (level, now)
            return Take(True, 0.0, min(levels, default=0.0)), -1


class Buckets:
    """Token buckets on Redis (shared) or in memory (one process)."""

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._memory = _MemoryBuckets()
        self._clients: dict[int, aredis.Redis] = {}
        self._scripts: dict[int, tuple[object, object]] = {}

    def _script(self, *, many: bool = False) -> object:
        # A redis.asyncio client (and its registered scripts) is bound to the loop it first ran on.
        loop_id = id(asyncio.get_running_loop())
        scripts = self._scripts.get(loop_id)
        if scripts is None:
            assert self.redis_url is not None
            client = aredis.Redis.from_url(self.redis_url, socket_timeout=2)
            self._clients[loop_id] = client
            scripts = self._scripts[loop_id] = (client.register_script(_TAKE), client.register_script(_TAKE_ALL))
        return scripts[1] if many else scripts[0]

    async def take_all(self, buckets: list[Bucket]) -> tuple[Take, int]:
        """Take from every bucket in one round trip, or from none: (the answer, the refusing index or -1)."""
        if self.redis_url is None:
            return self._memory.take_all(buckets)
        args: list[float] = []
        for b in buckets:
            args += [b.capacity, b.rate, b.cost, 1 if b.force else 0]
        try:
            raw = await self._script(many=True)(keys=[KEY_PREFIX + b.key for b in buckets], args=args)  # type: ignore[operator]
        except (redis.RedisError, OSError) as exc:
            log.warning("LLM limit buckets unreachable; counting in this process", error=str(exc))
            return self._memory.take_all(buckets)
        allowed, index, wait = raw
        if int(allowed):
            return Take(True, 0.0, 0.0), -1
        return Take(False, float(wait), 0.0), int(index) - 1

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


def _rpm(app_id: str, per_minute: int) -> Bucket:
    return Bucket(f"rpm:{app_id}", per_minute, per_minute / MINUTE_SECONDS)


def _tpd(app_id: str, tokens_per_day: int, cost: float, *, force: bool = False) -> Bucket:
    return Bucket(f"tpd:{app_id}", tokens_per_day, tokens_per_day / DAY_SECONDS, cost, force)


async def take_call(
    buckets: Buckets, app_id: str, per_minute: int, tokens_per_day: int, estimate: int | None
) -> tuple[Take, str | None]:
    """One call of `app_id`: a request from its minute and `estimate` tokens from its day (None: not
    billed), in one round trip; (the answer, "rpm" or "tpd" for the bucket that refused, else None)."""
    wanted = [_rpm(app_id, per_minute)]
    if estimate is not None:
        wanted.append(_tpd(app_id, tokens_per_day, min(estimate, tokens_per_day)))
    take, index = await buckets.take_all(wanted)
    return take, (None if index < 0 else ("rpm", "tpd")[index])


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
