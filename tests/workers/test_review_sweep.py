"""The worker's review sweep runs in a spawned child process, never as a thread of the worker's main process."""

from __future__ import annotations

import base64
import json
import threading
from datetime import timedelta

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


def _published_review_ids(client: object) -> list[int]:
    bodies = client.lrange(publish.QUEUE, 0, -1)  # type: ignore[attr-defined]
    ids = []
    for raw in bodies:
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        ids.append(int(args[0]))
    return ids


def test_sweep_is_a_child_process_that_republishes_and_stops(
    sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start_background_sweep spawns a process (no thread here) that publishes a lost review; stop ends it."""
    import redis

    monkeypatch.setenv("BROKER_URL", redis_url)
    monkeypatch.setenv("REVIEW_SWEEP_INTERVAL_SECONDS", "0.2")
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
    try:
        assert publish.start_background_sweep()
        assert not publish.start_background_sweep()  # once per process
        assert "review-sweep" not in {t.name for t in threading.enumerate()}
        process = publish._background
        assert process is not None and process.is_alive() and process.pid is not None
        wait_until(lambda: review_id in _published_review_ids(broker), timeout=30, what="the lost review re-published")
    finally:
        publish.stop_background_sweep()
        broker.delete(publish.QUEUE)
        get_settings.cache_clear()
    assert not process.is_alive() and publish._background is None
