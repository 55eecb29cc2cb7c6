"""The review sweep is a job of the scheduler's leader: it publishes again the reviews whose message was lost."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta
from typing import Any

import pytest

from bench.harness import wait_until
from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.reviews import publish
from orchestrator.reviews.models import Review


def _sweep_then_published(engine: Any, client: object) -> list[int]:
    engine.sweep_reviews()
    return _published_review_ids(client)


def _published_review_ids(client: object) -> list[int]:
    bodies = client.lrange(publish.QUEUE, 0, -1)  # type: ignore[attr-defined]
    ids = []
    for raw in bodies:
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        ids.append(int(args[0]))
    return ids


def test_the_scheduler_job_republishes_a_lost_review(
    sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader's `sweep-reviews` job publishes again a review whose message never reached the broker."""
    import redis

    from schedules.engine import TimerEngine
    from schedules.jobs import JOBS

    assert {"sweep-reviews": "sweep_reviews"}.items() <= {job.id: job.method for job in JOBS}.items()
    monkeypatch.setenv("BROKER_URL", redis_url)
    monkeypatch.setenv("REVIEW_REDRIVE_AFTER_SECONDS", "1")
    get_settings.cache_clear()
    broker = redis.Redis.from_url(redis_url)
    broker.delete(publish.QUEUE)
    body = {"id": "swept-app", "name": "Swept", "owner": "maker@example.com", "data_class": "public"}
    with session_scope() as session:
        catalog.register_app(session, parse_manifest(body), actor="test", policy=get_policy())
        # What a crash between commit and publish leaves behind: a queued row and no message.
        row = Review(
            app_id="swept-app", trigger="review.due", data_class="public", published_at=utcnow() - timedelta(minutes=5)
        )
        session.add(row)
        session.flush()
        review_id = row.id
    broker.delete(publish.QUEUE)  # only the sweep's message counts below
    engine = TimerEngine(get_settings(), lambda ids: None, stop=threading.Event())
    try:
        engine.sweep_reviews()
        assert _published_review_ids(broker) == [review_id]
        engine.sweep_reviews()
        assert _published_review_ids(broker) == [review_id], "the lease holds until REVIEW_REDRIVE_AFTER_SECONDS"
        wait_until(
            lambda: _sweep_then_published(engine, broker) == [review_id, review_id],
            timeout=30,
            what="the review published again once the lease ran out",
        )
    finally:
        engine.shutdown()
        broker.delete(publish.QUEUE)
        get_settings.cache_clear()
