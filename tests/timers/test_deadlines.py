"""The deadline service: scheduling in the caller's transaction, firing exactly once, per-app plans."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline, DeadlineStatus


def _pending(app_id: str) -> list[tuple[str, str | None]]:
    with session_scope(write=False) as session:
        return sorted((d.kind, d.ref) for d in deadlines.pending_for(session, app_id))


def test_fire_marks_once_and_emits_one_event(db_url: str) -> None:
    """A deadline fires once: a second delivery of the same id changes nothing and emits nothing."""
    with session_scope() as session:
        row = deadlines.schedule(session, kind="expiry", due_at=utcnow(), app_id="a1", payload={"x": 1})
        deadline_id = row.id
    assert deadline_id is not None
    with session_scope() as session:
        first = deadlines.fire(session, [deadline_id])
    with session_scope() as session:
        second = deadlines.fire(session, [deadline_id])
        events = session.exec(select(Event).where(Event.dedup_key == deadlines.dedup_key(deadline_id))).all()
        stored = session.get(Deadline, deadline_id)
    assert [d.id for d in first] == [deadline_id] and second == []
    assert len(events) == 1 and events[0].type == "app.expired" and events[0].payload["x"] == 1
    assert stored is not None and stored.status is DeadlineStatus.fired and stored.fired_at is not None


def test_cancelled_and_probe_deadlines(db_url: str) -> None:
    """A cancelled deadline never fires; a probe fires without an event."""
    with session_scope() as session:
        gone = deadlines.schedule(session, kind="review_due", due_at=utcnow(), app_id="a1")
        probe = deadlines.schedule(session, kind="probe", due_at=utcnow())
        deadlines.cancel(session, app_id="a1", kinds=["review_due"])
    assert gone.id is not None and probe.id is not None
    with session_scope() as session:
        fired = deadlines.fire(session, [gone.id, probe.id])
        events = session.exec(select(Event)).all()
    assert [d.id for d in fired] == [probe.id] and events == []


def test_rollback_schedules_nothing_and_sends_no_nudge(db_url: str, redis_url: str, monkeypatch: Any) -> None:
    """A rolled-back transaction leaves no deadline and publishes no nudge; a committed one does."""
    import redis

    from orchestrator.config import get_settings

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DEADLINE_NUDGE_CHANNEL", "test-nudges")
    get_settings.cache_clear()
    client = redis.Redis.from_url(redis_url)
    sub = client.pubsub(ignore_subscribe_messages=True)
    sub.subscribe("test-nudges")
    with pytest.raises(RuntimeError), session_scope() as session:
        deadlines.schedule(session, kind="probe", due_at=utcnow())
        raise RuntimeError("boom")
    with session_scope() as session:
        kept = deadlines.schedule(session, kind="probe", due_at=utcnow())
    messages = []
    for _ in range(20):
        message = sub.get_message(timeout=0.1)
        if message:
            messages.append(json.loads(message["data"]))
    sub.close()
    with session_scope(write=False) as session:
        assert len(session.exec(select(Deadline)).all()) == 1
    assert messages == [{"added": [kept.id], "cancelled": []}]


def test_reschedule_plans_expiry_notices_and_inactivity(app_factory: Any) -> None:
    """A sandbox app gets its expiry, one notice per policy notice day and an inactivity timer."""
    app = app_factory(expires_at=utcnow() + timedelta(days=30))
    with session_scope() as session:
        result = deadlines.reschedule_app(session, app, get_policy())
    kinds = [k for k, _ in _pending(app.id)]
    assert sorted(kinds) == ["expiry", "expiry_notice", "expiry_notice", "expiry_notice", "inactivity"]
    assert len(result.created) == 5
    with session_scope() as session:
        again = deadlines.reschedule_app(session, app, get_policy())
    assert again.created == [] and again.cancelled == [] and again.kept == 5


def test_extension_replaces_and_retirement_cancels(app_factory: Any) -> None:
    """Moving the expiry replaces the expiry timers atomically; sunsetting cancels every lifecycle timer."""
    app = app_factory(expires_at=utcnow() + timedelta(days=30))
    with session_scope() as session:
        deadlines.reschedule_app(session, app, get_policy())
    with session_scope() as session:
        app.expires_at = utcnow() + timedelta(days=90)
        moved = deadlines.reschedule_app(session, app, get_policy())
    assert len(moved.created) == 4 and len(moved.cancelled) == 4 and moved.kept == 1
    with session_scope() as session:
        app.stage = Stage.sunsetting
        deadlines.schedule(session, kind="retention_purge", due_at=utcnow(), app_id=app.id, ref="1")
        gone = deadlines.reschedule_app(session, app, get_policy())
    assert len(gone.cancelled) == 5
    assert _pending(app.id) == [("retention_purge", "1")]


def test_passed_notices_collapse_and_never_refire(app_factory: Any) -> None:
    """Notices whose day has passed become one notice now; once fired it is not planned again."""
    app = app_factory(expires_at=utcnow() + timedelta(days=3))
    with session_scope() as session:
        deadlines.reschedule_app(session, app, get_policy())
        notices = [d for d in deadlines.pending_for(session, app.id) if d.kind == "expiry_notice"]
    assert sorted(d.payload["days_before"] for d in notices) == [1, 7]
    overdue = [d for d in notices if d.payload["days_before"] == 7]
    assert overdue[0].due_at <= utcnow()
    with session_scope() as session:
        deadlines.fire(session, [overdue[0].id])  # type: ignore[list-item]
    with session_scope() as session:
        again = deadlines.reschedule_app(session, app, get_policy())
    assert again.created == []


def test_guarded_timers_are_cancelled_when_they_stop_applying(app_factory: Any) -> None:
    """Approval timers go when the approval is decided; the owner-left grace goes when reassigned."""
    app = app_factory(stage=Stage.orphaned, previous_stage=Stage.production, expires_at=None)
    with session_scope() as session:
        approval = ApprovalRequest(app_id=app.id, requested_by="maker@example.com")
        session.add(approval)
        session.flush()
        deadlines.schedule(session, kind="approval_reminder", due_at=utcnow(), app_id=app.id, ref=str(approval.id))
        deadlines.schedule(session, kind="owner_left_grace", due_at=utcnow(), app_id=app.id, ref="gone@example.com")
        kept = deadlines.reschedule_app(session, app, get_policy())
    assert kept.cancelled == []
    with session_scope() as session:
        stored = session.get(ApprovalRequest, approval.id)
        assert stored is not None
        stored.status = "approved"  # type: ignore[assignment]
        session.add(stored)
        app.stage = Stage.production
        result = deadlines.reschedule_app(session, app, get_policy())
    assert len(result.cancelled) == 2
    assert [k for k, _ in _pending(app.id)] == ["inactivity"]
