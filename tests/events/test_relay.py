"""The relay's claim: what is due, the lease, SKIP LOCKED on PostgreSQL, one relay per SQLite file."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.events.models import Event, EventStatus
from orchestrator.events.relay import SingleRelayLock, claim_due, republish_due
from tests.events.helpers import events


def _emit(type: str = "app.created", *, age_seconds: float = 0, status: EventStatus = EventStatus.pending) -> str:
    """An event row as a process that died before publishing would leave it (no after-commit publish)."""
    from orchestrator.db import new_id, session_scope

    at = utcnow() - timedelta(seconds=age_seconds)
    event = Event(type=type, source="test", app_id="a", dedup_key=f"test:{new_id()}", received_at=at, status=status)
    if status is not EventStatus.pending:
        event.published_at = at
    with session_scope() as session:
        session.add(event)
    return event.id


def _claim() -> list[str]:
    from orchestrator.db import session_scope

    with session_scope() as session:
        return claim_due(session, get_settings())


def test_due_events_are_claimed_once_per_lease(db_url: str) -> None:
    """Old pending and long-unhandled events are claimed; young ones and a fresh lease are left alone."""
    young = _emit(age_seconds=1)
    old = _emit(age_seconds=60)
    stuck = _emit(age_seconds=3600, status=EventStatus.handling)
    waiting = _emit(age_seconds=60, status=EventStatus.enqueued)  # a backlog, not yet stale
    done = _emit(age_seconds=3600, status=EventStatus.failed)
    assert sorted(_claim()) == sorted([old, stuck])
    assert _claim() == [], "the lease holds until the delay passes again"
    assert {young, waiting, done}.isdisjoint(_claim())


def test_republish_marks_enqueued(db_url: str) -> None:
    """republish_due sends what is due to the broker and marks pending events enqueued."""
    old = _emit(age_seconds=60)
    assert republish_due() == 1
    [event] = events(id=old)
    assert event.status is EventStatus.enqueued and event.published_at is not None


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_rows_locked_by_a_handler_are_skipped(db_url: str) -> None:
    """On PostgreSQL a row held FOR UPDATE (a running handler) is skipped, not waited for."""
    from orchestrator.db import session_scope

    held, free = _emit(age_seconds=60), _emit(age_seconds=60)
    with session_scope() as handler:
        handler.exec(select(Event).where(Event.id == held).with_for_update()).one()
        assert _claim() == [free]
        handler.execute(update(Event).where(col(Event.id) == held).values(status=EventStatus.handled))


def test_one_relay_per_sqlite_file(sqlite_url: str) -> None:
    """Two relays on one SQLite database: the second stands by until the first lets go."""
    first, second = SingleRelayLock(sqlite_url), SingleRelayLock(sqlite_url)
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()
    assert SingleRelayLock("postgresql+psycopg://db/x").acquire(), "no file lock on PostgreSQL"
