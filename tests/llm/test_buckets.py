"""The limit buckets' one round trip: all or none (but the minute's request), and settlements charged with it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from orchestrator.llm.limits import Bucket, Buckets, Settlements, Spend, Take, take_call, taken_before_cancel

FAST = 60_000_000  # requests per minute that refill at once: only the day's tokens can refuse


async def cancelled_once_sent(coro: Coroutine[Any, Any, object]) -> BaseException:
    """Run `coro` in a task and cancel it once its call has been put into a round trip; its CancelledError.

    Deterministic: asyncio runs ready callbacks in order — the task queues its call and starts the
    sending task, then the sending task puts the call into a round trip and waits for Redis.
    """
    task = asyncio.create_task(coro)
    await asyncio.sleep(0)  # the call is queued
    await asyncio.sleep(0)  # the call is in a round trip
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as left:
        await task
    return left.value


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_a_refused_call_takes_its_request_only_and_settlements_reach_other_processes(
    redis_url: str, backend: str
) -> None:
    """tpd short: only the minute's request is taken (an app out of tokens can't call unbounded); a
    settlement flushed by one process refuses the next call in another (Redis), and a settlement
    carried by a refused call is charged all the same."""
    url = redis_url if backend == "redis" else None
    app = "app-" + secrets.token_hex(4)

    async def scenario() -> None:
        here, there = Buckets(url), Buckets(url)
        other = there if url else here  # without Redis a process has only its own buckets
        try:
            taken, short = await take_call(here, app, per_minute=2, tokens_per_day=100, estimate=150)
            assert taken.allowed and short is None  # capped at the day's size: takes all 100
            taken, short = await take_call(here, app, per_minute=2, tokens_per_day=100, estimate=1)
            assert not taken.allowed and short == "tpd" and taken.retry_after > 0
            # The refused call took its request: the minute's two are used up.
            taken, short = await take_call(here, app, per_minute=2, tokens_per_day=100, estimate=None)
            assert not taken.allowed and short == "rpm"
            settlements = Settlements()
            settlements.owe(app, 100, actual=10, estimate=100)  # the provider counted 90 fewer
            await settlements.flush(here)
            assert not settlements
            taken, short = await take_call(other, app, per_minute=FAST, tokens_per_day=100, estimate=80)
            assert taken.allowed, "the 90 tokens given back were not seen"
            taken, short = await take_call(other, app, per_minute=FAST, tokens_per_day=100, estimate=5, debit=50)
            assert not taken.allowed and short == "tpd"  # 10 left, 50 owed: short of 5
            taken, short = await take_call(other, app, per_minute=FAST, tokens_per_day=100, estimate=5)
            assert not taken.allowed  # the debit stayed charged although that call was refused
        finally:
            await here.close()
            await there.close()

    asyncio.run(scenario())


@pytest.mark.redis
@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_the_daily_budget_refuses_alone_and_is_settled_at_the_real_cost(redis_url: str, backend: str) -> None:
    """A call the budget cannot pay is refused with "usd" and takes no tokens from the day;
    money given back by a settlement pays for the next call."""
    url = redis_url if backend == "redis" else None
    app = "budget-" + secrets.token_hex(4)

    async def scenario() -> None:
        buckets = Buckets(url)
        try:
            taken, short = await take_call(buckets, app, FAST, 1000, 10, spend=Spend(budget=100, cost=90))
            assert taken.allowed and short is None
            taken, short = await take_call(buckets, app, FAST, 1000, 10, spend=Spend(budget=100, cost=20))
            assert not taken.allowed and short == "usd" and taken.retry_after > 0
            # The refused call took no tokens: 990 are left of the day's 1,000.
            taken, short = await take_call(buckets, app, FAST, 1000, 990)
            assert taken.allowed
            settlements = Settlements()
            settlements.owe_spend(app, 100, actual=30, estimate=90)  # it cost 60 less than estimated
            await settlements.flush(buckets)
            taken, short = await take_call(buckets, app, FAST, 1000, None, spend=Spend(budget=100, cost=60))
            assert taken.allowed, "the 60 given back were not seen"
        finally:
            await buckets.close()

    asyncio.run(scenario())


@pytest.mark.redis
def test_concurrent_calls_share_round_trips_and_each_is_taken_on_its_own(redis_url: str) -> None:
    """Calls that come while a round trip is in flight go together in the next one: fewer round trips
    than calls, and still exactly the minute's number allowed, each refused one naming its bucket."""
    app = "batch-" + secrets.token_hex(4)

    async def scenario() -> None:
        buckets = Buckets(redis_url)
        trips: list[int] = []
        real = buckets._round_trip

        async def counted(calls: list[list[Bucket]]) -> list[tuple[Take, int]]:
            trips.append(len(calls))
            return await real(calls)

        buckets._round_trip = counted  # type: ignore[method-assign]
        try:
            answers = await asyncio.gather(
                *(take_call(buckets, app, per_minute=10, tokens_per_day=10**9, estimate=5) for _ in range(30))
            )
        finally:
            await buckets.close()
        assert sum(1 for taken, _ in answers if taken.allowed) == 10
        assert {short for taken, short in answers if not taken.allowed} == {"rpm"}
        assert sum(trips) == 30 and len(trips) < 30 and max(trips) > 1, trips

    asyncio.run(scenario())


@pytest.mark.redis
def test_a_call_cancelled_while_queued_is_not_taken(redis_url: str) -> None:
    """A client that leaves while its call waits behind another's round trip costs its app nothing."""
    app = "cancel-" + secrets.token_hex(4)

    async def scenario() -> None:
        buckets = Buckets(redis_url)
        try:
            first = asyncio.create_task(take_call(buckets, app, per_minute=2, tokens_per_day=10**9, estimate=5))
            await asyncio.sleep(0)  # the first call's round trip is scheduled
            queued = asyncio.create_task(take_call(buckets, app, per_minute=2, tokens_per_day=10**9, estimate=5))
            await asyncio.sleep(0)  # the round trip has gone out; the second call waits behind it
            queued.cancel()
            assert (await first)[0].allowed
            with pytest.raises(asyncio.CancelledError) as left:
                await queued
            assert taken_before_cancel(left.value) is None  # its caller gives back what it had taken
            taken, _ = await take_call(buckets, app, per_minute=2, tokens_per_day=10**9, estimate=5)
            assert taken.allowed, "the cancelled call took the minute's second request"
            taken, short = await take_call(buckets, app, per_minute=2, tokens_per_day=10**9, estimate=5)
            assert not taken.allowed and short == "rpm"
        finally:
            await buckets.close()

    asyncio.run(scenario())


@pytest.mark.redis
def test_a_flush_cancelled_after_its_round_trip_went_is_charged_once(redis_url: str) -> None:
    """Shutdown cancels the periodic settlement mid-flush: the round trip still charges what was owed,
    so it must not be owed again (the final flush would charge it twice)."""
    app = "flush-" + secrets.token_hex(4)

    async def scenario() -> None:
        buckets = Buckets(redis_url)
        try:
            settlements = Settlements()
            settlements.owe(app, 100, actual=60, estimate=0)
            assert taken_before_cancel(await cancelled_once_sent(settlements.flush(buckets))) is not None
            assert not settlements, "the 60 tokens are owed again"
            taken, _ = await take_call(buckets, app, per_minute=FAST, tokens_per_day=100, estimate=40)
            assert taken.allowed  # 60 charged once: 40 left
            taken, short = await take_call(buckets, app, per_minute=FAST, tokens_per_day=100, estimate=1)
            assert not taken.allowed and short == "tpd"
        finally:
            await buckets.close()

    asyncio.run(scenario())


@pytest.mark.redis
def test_a_client_leaving_after_its_round_trip_went_gets_its_estimate_back(redis_url: str) -> None:
    """The connector's `_take`: a call cancelled after its round trip went is taken (the minute's
    request counts) but never reached the provider, so its prompt's estimate is owed back."""
    from orchestrator.catalog.policy import LlmPolicy
    from orchestrator.http.llm import Call, Connector, _take

    app = "leaver-" + secrets.token_hex(4)
    rules = LlmPolicy(enabled=True, models={"openai": ["m"]}, requests_per_minute=FAST, tokens_per_day=100)

    async def scenario() -> None:
        connector = Connector(upstream=cast(Any, None), buckets=Buckets(redis_url))
        try:
            call = Call("openai", "chat")
            call.app_id = app
            answer = taken_before_cancel(await cancelled_once_sent(_take(connector, call, rules, 80)))
            assert answer is not None and answer[0].allowed
            taken, short = await take_call(connector.buckets, app, FAST, 100, 30)
            assert not taken.allowed and short == "tpd"  # the 80 were taken: 20 left
            await connector.settlements.flush(connector.buckets)  # the 80 owed back
            taken, _ = await take_call(connector.buckets, app, FAST, 100, 100)
            assert taken.allowed, "the estimate of a call the provider never got was not given back"
            # Now out of tokens: a call refused in a round trip its client left took none, so it
            # gives nothing back (the app would be credited tokens it never spent).
            call = Call("openai", "chat")
            call.app_id = app
            answer = taken_before_cancel(await cancelled_once_sent(_take(connector, call, rules, 50)))
            assert answer is not None and not answer[0].allowed
            assert connector.settlements.take(app) == 0
        finally:
            await connector.buckets.close()

    asyncio.run(scenario())
