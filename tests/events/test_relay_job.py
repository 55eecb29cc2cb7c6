"""The relay runs as a job of the scheduler's leader (the worker no longer starts it)."""

from __future__ import annotations

import threading
from datetime import timedelta

from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.db import new_id, session_scope
from orchestrator.events.models import Event, EventStatus
from tests.events.helpers import events


def test_the_relay_job_publishes_what_never_reached_the_broker(db_url: str) -> None:
    """An event left pending (its process died before publishing) is published by one pass of the job."""
    from schedules.engine import TimerEngine
    from schedules.jobs import JOBS

    job = {j.id: j for j in JOBS}["relay-outbox"]
    assert (job.method, job.interval_setting) == ("relay", "relay_interval_seconds")
    old = Event(
        type="app.created", source="test", app_id="a", dedup_key=f"test:{new_id()}",
        received_at=utcnow() - timedelta(minutes=1),
    )  # fmt: skip
    with session_scope() as session:
        session.add(old)
    engine = TimerEngine(get_settings(), lambda ids: None, stop=threading.Event())
    try:
        engine.relay()
    finally:
        engine.shutdown()
    [event] = events(id=old.id)
    assert event.status is EventStatus.enqueued and event.published_at is not None
