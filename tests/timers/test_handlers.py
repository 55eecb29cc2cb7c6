"""Fired deadlines through the real event runner: notices, expiry → sunset, inactivity, staleness checks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.events.runner import run_event
from orchestrator.notifications.models import Notification
from orchestrator.sunset.models import SunsetRun
from orchestrator.timers import service as deadlines


def _fire(app_id: str, kind: str) -> list[str]:
    """Fire the app's due deadlines of `kind` (as the timer task would) and run their events."""
    with session_scope() as session:
        ids = [d.id for d in deadlines.pending_for(session, app_id) if d.kind == kind and d.due_at <= utcnow()]
        fired = deadlines.fire(session, ids)  # type: ignore[arg-type]
    keys = [deadlines.dedup_key(d.id) for d in fired]  # type: ignore[arg-type]
    with session_scope(write=False) as session:
        events = session.exec(select(Event).where(col(Event.dedup_key).in_(keys))).all()
    outcomes = [run_event(e.id).status for e in events]
    return outcomes


def _app(app_id: str) -> MicroApp:
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app


def _plan(app: MicroApp) -> None:
    with session_scope() as session:
        deadlines.reschedule_app(session, app, get_policy())


def test_notice_marks_expiring_and_tells_the_owner(app_factory: Any) -> None:
    """The first expiry notice moves the app to expiring and queues the owner's notice with "Extend"."""
    app = app_factory(expires_at=utcnow() + timedelta(days=3))
    _plan(app)
    assert _fire(app.id, "expiry_notice") == ["handled"]
    assert _app(app.id).stage is Stage.expiring
    with session_scope(write=False) as session:
        notes = session.exec(select(Notification).where(Notification.app_id == app.id)).all()
    assert [n.recipient for n in notes] == ["maker@example.com"]


def test_expiry_starts_the_sunset(app_factory: Any) -> None:
    """An expired sandbox goes to sunsetting and gets its sunset run."""
    app = app_factory(expires_at=utcnow() - timedelta(seconds=1))
    _plan(app)
    assert _fire(app.id, "expiry") == ["handled"]
    assert _app(app.id).stage is Stage.sunsetting
    with session_scope(write=False) as session:
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app.id)).one()
    assert run.trigger == "app.expired"


def test_expiry_after_an_extension_is_ignored(app_factory: Any) -> None:
    """An expiry event for the old date does nothing once the expiry has moved."""
    app = app_factory(expires_at=utcnow() - timedelta(seconds=1))
    _plan(app)
    with session_scope() as session:
        stored = session.get(MicroApp, app.id)
        assert stored is not None
        stored.expires_at = utcnow() + timedelta(days=30)
        session.add(stored)
    assert _fire(app.id, "expiry") == ["handled"]
    assert _app(app.id).stage is Stage.registered


def test_inactivity_rearms_when_used_and_expires_when_not(app_factory: Any) -> None:
    """A used app's inactivity timer moves on; an unused one gets an expiry with its notices."""
    long_ago = utcnow() - timedelta(days=400)
    app = app_factory(stage=Stage.production, expires_at=None, created_at=long_ago, approved_at=long_ago)
    _plan(app)
    with session_scope() as session:
        stored = session.get(MicroApp, app.id)
        assert stored is not None
        stored.last_used_at = utcnow()
        session.add(stored)
    assert _fire(app.id, "inactivity") == ["handled"]
    with session_scope(write=False) as session:
        rearmed = [d for d in deadlines.pending_for(session, app.id) if d.kind == "inactivity"]
    assert len(rearmed) == 1 and rearmed[0].due_at > utcnow() + timedelta(days=50)
    assert _app(app.id).expires_at is None
    with session_scope() as session:
        stored = session.get(MicroApp, app.id)
        assert stored is not None
        stored.last_used_at = long_ago
        session.add(stored)
        deadlines.cancel(session, app_id=app.id, kinds=["inactivity"])
        deadlines.schedule(session, kind="inactivity", due_at=utcnow(), app_id=app.id, ref="test")
    assert _fire(app.id, "inactivity") == ["handled"]
    expires = _app(app.id).expires_at
    assert expires is not None and timedelta(days=13) < expires - utcnow() <= timedelta(days=14)
    with session_scope(write=False) as session:
        kinds = sorted(d.kind for d in deadlines.pending_for(session, app.id))
    assert kinds.count("expiry") == 1 and "expiry_notice" in kinds
