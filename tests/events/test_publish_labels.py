"""The publisher labels its messages itself: Celery's `saferepr` of 50 ids cost ~65 µs per send."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis


@pytest.fixture
def queue(redis_url: str) -> Iterator[tuple[str, redis.Redis]]:
    """The events queue on this session's Redis database, emptied before and after."""
    from orchestrator.events.publisher import QUEUE

    client = redis.Redis.from_url(redis_url)
    client.delete(QUEUE)
    yield redis_url, client
    client.delete(QUEUE)


def test_messages_carry_short_labels(queue: tuple[str, redis.Redis]) -> None:
    """A batch is labelled by its count and ends, a lone id by its repr; the arguments are whole."""
    from orchestrator.events.publisher import BATCH_SIZE, QUEUE, publish_now

    url, client = queue
    ids = [f"evt-{i:04d}" for i in range(BATCH_SIZE + 1)]
    assert publish_now(ids, broker_url=url, mark=False) == ids
    publish_now(ids[:1], broker_url=url, mark=False, suspect=True)
    messages = [json.loads(raw) for raw in reversed(client.lrange(QUEUE, 0, -1))]
    labels = [(m["headers"]["argsrepr"], m["headers"]["kwargsrepr"]) for m in messages]
    assert labels == [
        (f"[<{BATCH_SIZE} event ids, evt-0000 to evt-{BATCH_SIZE - 1:04d}>]", "{}"),
        (f"['evt-{BATCH_SIZE:04d}']", "{}"),
        ("['evt-0000']", "{'suspect': True}"),
    ]
