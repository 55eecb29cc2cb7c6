"""Per-app limits of the LLM connector: token buckets shared by every API process through Redis.

Two buckets per app: requests per minute (one token a request) and LLM tokens per day (the prompt
estimate is taken before the call; the difference to the provider's count is settled after it and
may leave the bucket in debt, which refuses the next calls until it refills); a third, the day's
budget in millionths of a dollar, when the app's class has `daily_budget_usd` (settled the same way).
One Lua script does refill-and-take atomically on Redis's own clock, so any number of processes
share one budget, and does a call's whole bookkeeping in one round trip (`take_call`): its buckets
— all of them, or none when one is short, but for the minute's request, which a refused call takes
too — and the settlement of the app's earlier calls (`Settlements`, otherwise flushed every
SETTLE_SECONDS). Without Redis (the embedded default) the same arithmetic runs in process memory.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import threading
import time
from dataclasses import dataclass, field

import redis
import redis.asyncio as aredis

from orchestrator.logs import get_logger

KEY_PREFIX = "llm:bucket:"
log = get_logger(__name__)

# KEYS: the buckets of every call in the batch, call after call; ARGV[1]: five numbers per bucket,
# space-separated (one argument instead of five a bucket: redis-py encodes each argument in Python):
# capacity, refill per second, cost, force (1: take even into debt; 2: take whenever this bucket
# itself is not short, even if another refuses), debit (settled whatever the answer: the provider's
# count of earlier calls minus their estimates, negative to give back); ARGV[2]: how many buckets
# each call has. The calls are taken one after the other, each exactly as if it came alone. Within a
# call, every bucket is refilled, debited and checked first; the costs are taken only if none is
# short, so a call refused by one bucket costs nothing from the others — but the minute's request
# (force 2): a refused call is a request all the same, or an app out of tokens could call unbounded.
# Returns three values a call: allowed (0/1), the 1-based index of its bucket that refused (0 when
# allowed), seconds until it would allow (string).
_TAKE_ALL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local a = {}
for v in string.gmatch(ARGV[1], '%S+') do a[#a + 1] = tonumber(v) end
local out = {}
local first = 0
for n in string.gmatch(ARGV[2], '%d+') do
  local count = tonumber(n)
  local levels = {}
  local refused = 0
  local wait = 0
  for i = 1, count do
    local base = (first + i - 1) * 5
    local cap = a[base + 1]
    local rate = a[base + 2]
    local cost = a[base + 3]
    local force = a[base + 4]
    local v = redis.call('HMGET', KEYS[first + i], 'tokens', 'ts')
    local tokens = tonumber(v[1])
    local ts = tonumber(v[2])
    if tokens == nil then tokens = cap; ts = now end
    tokens = math.min(cap, math.min(cap, tokens + math.max(0, now - ts) * rate) - a[base + 5])
    if refused == 0 and force ~= 1 and tokens < cost then
      refused = i
      wait = (cost - tokens) / rate
    end
    levels[i] = tokens
  end
  for i = 1, count do
    local base = (first + i - 1) * 5
    local level = levels[i]
    local cost = a[base + 3]
    if refused == 0 or (a[base + 4] == 2 and level >= cost) then level = level - cost end
    local key = KEYS[first + i]
    redis.call('HSET', key, 'tokens', tostring(level), 'ts', tostring(now))
    redis.call('EXPIRE', key, math.ceil(a[base + 1] / a[base + 2]) + 60)
  end
  out[#out + 1] = refused == 0 and 1 or 0
  out[#out + 1] = refused
  out[#out + 1] = tostring(wait)
  first = first + count
end
return out
"""


@dataclass(frozen=True)
class Bucket:
    """One bucket of a call: its key, capacity, refill per second, and what the call takes from it."""

    key: str
    capacity: float
    rate: float
    cost: float = 1.0
    force: bool = False
    debit: float = 0.0  # settled whatever the answer (see _TAKE_ALL)
    always: bool = False  # taken whenever this bucket is not short itself, even when another refuses


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

    def take_all(self, buckets: list[Bucket]) -> tuple[Take, int]:
        with self._lock:
            now = time.monotonic()
            levels = []
            refused, wait = -1, 0.0
            for index, b in enumerate(buckets):
                tokens, ts = self._state.get(b.key, (b.capacity, now))
                tokens = min(b.capacity, min(b.capacity, tokens + max(0.0, now - ts) * b.rate) - b.debit)
                if refused < 0 and not b.force and tokens < b.cost:
                    refused, wait = index, (b.cost - tokens) / b.rate
                levels.append(tokens)
            for b, level in zip(buckets, levels, strict=True):
                taken = refused < 0 or (b.always and level >= b.cost)
                self._state[b.key] = (level - (b.cost if taken else 0.0), now)
            if refused >= 0:
                return Take(False, wait, levels[refused]), refused
            return Take(True, 0.0, 0.0), -1


_TAKEN = "llm_limits_taken"  # the attribute a caller's CancelledError carries its call's answer in


def taken_before_cancel(exc: BaseException) -> tuple[Take, int] | None:
    """The answer of a call whose caller was cancelled after its round trip went (the call is taken
    all the same: what it took stays taken), else None (not taken, or not known to be)."""
    answer: tuple[Take, int] | None = getattr(exc, _TAKEN, None)
    return answer


@dataclass
class _Call:
    buckets: list[Bucket]
    future: asyncio.Future[tuple[Take, int]]
    sent: bool = False  # in a round trip: taken whatever its caller does now
    abandoned: bool = False  # its caller left before it was sent: never sent


@dataclass
class _Batch:
    """The calls of one event loop waiting for the round trip after the one in flight."""

    loop: asyncio.AbstractEventLoop
    calls: list[_Call] = field(default_factory=list)
    task: asyncio.Task[None] | None = None  # held: the loop keeps only a weak reference to a task


def _batchable(buckets: list[Bucket]) -> bool:
    # Redis keeps what a script wrote before it failed: numbers the script can't use (a non-finite
    # one makes EXPIRE fail; the policy refuses such budgets and prices, a stray one must still not
    # fail other apps' calls) go alone, as before batching.
    return all(math.isfinite(n) for b in buckets for n in (b.capacity, b.rate, b.cost, b.debit)) and all(
        b.rate > 0 for b in buckets
    )


class Buckets:
    """Token buckets on Redis (shared) or in memory (one process).

    On Redis, calls that come while a round trip is in flight wait for it and then go together in
    the next one (each still taken on its own, in order): under load one script call serves several
    requests, whose client-side cost (redis-py's, in this process) is most of a call's; alone, a call
    goes at once.
    """

    def __init__(self, redis_url: str | None) -> None:
        self.redis_url = redis_url
        self._memory = _MemoryBuckets()
        self._clients: dict[int, aredis.Redis] = {}
        self._scripts: dict[int, object] = {}
        self._batches: dict[int, _Batch] = {}

    def _script(self) -> object:
        # A redis.asyncio client (and its registered script) is bound to the loop it first ran on.
        loop_id = id(asyncio.get_running_loop())
        script = self._scripts.get(loop_id)
        if script is None:
            assert self.redis_url is not None
            client = aredis.Redis.from_url(self.redis_url, socket_timeout=2)
            self._clients[loop_id] = client
            script = self._scripts[loop_id] = client.register_script(_TAKE_ALL)
        return script

    async def take_all(self, buckets: list[Bucket]) -> tuple[Take, int]:
        """Take from every bucket in one round trip, or from none: (the answer, the refusing index or -1)."""
        if self.redis_url is None:
            return self._memory.take_all(buckets)
        if not _batchable(buckets):
            return (await self._round_trip([buckets]))[0]
        loop = asyncio.get_running_loop()
        batch = self._batches.get(id(loop))
        if batch is None or batch.loop is not loop:  # (an id can come again for a later loop)
            batch = self._batches[id(loop)] = _Batch(loop)
        call = _Call(buckets, loop.create_future())
        batch.calls.append(call)
        if batch.task is None or batch.task.done():
            # Its own task: a caller that leaves (a client gone) must not cancel the others' round trip.
            # A fresh context: the task serves later requests too, whose log lines are not this one's.
            batch.task = loop.create_task(self._send(batch), context=contextvars.Context())
        try:
            return await asyncio.shield(call.future)
        except asyncio.CancelledError as exc:
            if not call.sent:  # left before its round trip went: dropped from the batch, not taken at all
                call.abandoned = True
                raise
            # Taken all the same: its answer (at most a round trip away) tells the caller what was.
            try:
                answer = await call.future
            except BaseException:
                raise exc from None  # the trip failed or was cancelled (shutdown): not known to be taken
            setattr(exc, _TAKEN, answer)
            raise

    async def _send(self, batch: _Batch) -> None:
        while batch.calls:
            calls = [call for call in batch.calls if not call.abandoned]
            batch.calls = []
            if not calls:
                return
            for call in calls:
                call.sent = True
            try:
                answers = await self._round_trip([call.buckets for call in calls])
            except Exception as exc:  # this trip's calls get its error; those queued meanwhile still go
                for call in calls:
                    if not call.future.done():
                        call.future.set_exception(exc)
                continue
            except BaseException:  # cancelled (shutdown): no caller may wait for ever
                for call in [*calls, *batch.calls]:
                    call.future.cancel()
                batch.calls = []
                raise
            for call, answer in zip(calls, answers, strict=True):
                if not call.future.done():
                    call.future.set_result(answer)

    async def _round_trip(self, calls: list[list[Bucket]]) -> list[tuple[Take, int]]:
        # repr: the shortest text that reads back as the same double, as redis-py would have sent each one.
        numbers = " ".join(
            f"{b.capacity!r} {b.rate!r} {b.cost!r} {1 if b.force else 2 if b.always else 0} {b.debit!r}"
            for buckets in calls
            for b in buckets
        )
        keys = [KEY_PREFIX + b.key for buckets in calls for b in buckets]
        counts = " ".join(str(len(buckets)) for buckets in calls)
        try:
            raw = await self._script()(keys=keys, args=[numbers, counts])  # type: ignore[operator]
        except (redis.RedisError, OSError) as exc:
            log.warning("LLM limit buckets unreachable; counting in this process", error=str(exc))
            return [self._memory.take_all(buckets) for buckets in calls]
        answers: list[tuple[Take, int]] = []
        for i in range(0, len(raw), 3):
            allowed, index, wait = raw[i : i + 3]
            answers.append(
                (Take(True, 0.0, 0.0), -1) if int(allowed) else (Take(False, float(wait), 0.0), int(index) - 1)
            )
        return answers

    async def close(self) -> None:
        """Close the Redis clients of the running loop (once the round trip in flight is back)."""
        loop_id = id(asyncio.get_running_loop())
        batch = self._batches.pop(loop_id, None)
        if batch is not None and batch.task is not None and not batch.task.done():
            await asyncio.wait([batch.task], timeout=5)
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
    return Bucket(f"rpm:{app_id}", per_minute, per_minute / MINUTE_SECONDS, always=True)


@dataclass(frozen=True)
class Spend:
    """A call against its app's daily budget, in millionths of a US dollar: the budget, the call's
    estimated cost, and what earlier calls' real cost exceeded their estimates by."""

    budget: float
    cost: float
    debit: float = 0.0


async def take_call(
    buckets: Buckets,
    app_id: str,
    per_minute: int | None,
    tokens_per_day: int,
    estimate: int | None,
    *,
    debit: int = 0,
    spend: Spend | None = None,
) -> tuple[Take, str | None]:
    """One call of `app_id` in one round trip: a request from its minute (`per_minute` None: not
    now), `estimate` tokens from its day (None: not billed) and `debit` — what earlier calls'
    provider counts exceeded their estimates by (`Settlements`), settled whatever the answer — and,
    with a daily budget, the call's cost from its day's money; (the answer, "rpm", "tpd" or "usd"
    for the bucket that refused, else None)."""
    wanted = [] if per_minute is None else [_rpm(app_id, per_minute)]
    names = [] if per_minute is None else ["rpm"]
    if estimate is not None or debit:
        cost = min(estimate, tokens_per_day) if estimate is not None else 0
        wanted.append(Bucket(f"tpd:{app_id}", tokens_per_day, tokens_per_day / DAY_SECONDS, cost, debit=debit))
        names.append("tpd")
    if spend is not None:
        # Capped like the tokens: a call dearer than a whole day's budget may still run on a full day.
        wanted.append(
            Bucket(
                f"usd:{app_id}",
                spend.budget,
                spend.budget / DAY_SECONDS,
                min(spend.cost, spend.budget),
                debit=spend.debit,
            )
        )
        names.append("usd")
    take, index = await buckets.take_all(wanted)
    return take, (None if index < 0 else names[index])


class Settlements:
    """What the provider's token count (and the cost it makes) differs from the estimate taken, owed
    per app and bucket.

    Charged with the app's next call from this process (in the same round trip as its own limits),
    or by `flush` — every SETTLE_SECONDS and at shutdown — so the other processes see it within that.
    """

    def __init__(self) -> None:
        self._owed: dict[str, tuple[float, float]] = {}  # bucket key → (owed, the bucket's capacity)

    def _add(self, key: str, capacity: float, diff: float) -> None:
        if diff:
            owed, _ = self._owed.get(key, (0.0, capacity))
            self._owed[key] = (owed + diff, capacity)

    def owe(self, app_id: str, tokens_per_day: int, actual: int, estimate: int) -> None:
        """Note what the provider counted for a call against the estimate taken before it."""
        self._add(f"tpd:{app_id}", tokens_per_day, actual - min(estimate, tokens_per_day))

    def owe_spend(self, app_id: str, budget: float, actual: float, estimate: float) -> None:
        """Note what a call really cost against the estimate taken from the app's daily budget."""
        self._add(f"usd:{app_id}", budget, actual - min(estimate, budget))

    def take(self, app_id: str) -> int:
        """The tokens `app_id` owes (now charged by the caller's round trip)."""
        return round(self._owed.pop(f"tpd:{app_id}", (0.0, 0.0))[0])

    def take_spend(self, app_id: str) -> float:
        """The money `app_id` owes (now charged by the caller's round trip)."""
        return self._owed.pop(f"usd:{app_id}", (0.0, 0.0))[0]

    def __bool__(self) -> bool:
        return bool(self._owed)

    async def flush(self, buckets: Buckets) -> None:
        """Charge everything owed, every app in one round trip."""
        owed, self._owed = self._owed, {}
        if owed:
            try:
                await buckets.take_all(
                    [
                        Bucket(key, cap, cap / DAY_SECONDS, 0, force=True, debit=diff)
                        for key, (diff, cap) in owed.items()
                    ]
                )
            except BaseException as exc:
                if taken_before_cancel(exc) is None:  # not charged (cancelled before it went, or failed)
                    self.give_back(owed)
                raise

    def give_back(self, owed: dict[str, tuple[float, float]]) -> None:
        """Owe again what a round trip that did not happen had taken (see `flush`)."""
        for key, (diff, capacity) in owed.items():
            self._add(key, capacity, diff)

    def untake(self, app_id: str, tokens_per_day: int, debit: int, spend: Spend | None) -> None:
        """Owe again what `take` (and `take_spend`, in `spend.debit`) handed to a call whose round
        trip did not happen (cancelled: the client left)."""
        self._add(f"tpd:{app_id}", tokens_per_day, debit)
        if spend is not None:
            self._add(f"usd:{app_id}", spend.budget, spend.debit)


SETTLE_SECONDS = 1.0
