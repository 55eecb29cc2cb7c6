"""Operator-facing event services: list events by status, show one, re-drive a failed or parked one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.clock import as_utc, utcnow
from orchestrator.errors import Conflict, NotFound
from orchestrator.events.models import Event, EventStatus
from orchestrator.pagination import BadCursor, decode_cursor, encode_cursor

RETRYABLE = (EventStatus.failed, EventStatus.parked, EventStatus.pending, EventStatus.enqueued, EventStatus.handling)


_CURSOR_KIND = "events"


def _cursor(event: Event) -> str:
    return encode_cursor(_CURSOR_KIND, as_utc(event.received_at).isoformat(), event.id)


def _decode(cursor: str) -> tuple[datetime, str]:
    at, event_id = decode_cursor(cursor, _CURSOR_KIND, parts=2)
    try:
        return as_utc(datetime.fromisoformat(at)), event_id
    except ValueError:
        raise BadCursor("its position is not a time") from None


def list_events(
    session: Session,
    *,
    status: EventStatus | None = None,
    type: str | None = None,
    app_id: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[Event], str | None]:
    """One page of events, newest first, and the cursor of the next page (None on the last)."""
    query = select(Event)
    if status is not None:
        query = query.where(Event.status == status)
    if type:
        query = query.where(Event.type == type)
    if app_id:
        query = query.where(Event.app_id == app_id)
    if cursor:
        at, event_id = _decode(cursor)
        query = query.where(
            or_(col(Event.received_at) < at, and_(col(Event.received_at) == at, col(Event.id) < event_id))
        )
    rows = list(session.exec(query.order_by(col(Event.received_at).desc(), col(Event.id).desc()).limit(limit + 1)))
    next_cursor = _cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def get_event(session: Session, event_id: str) -> Event:
    """The event with this id, or NotFound."""
    event = session.get(Event, event_id)
    if event is None:
        raise NotFound(f"no event with id {event_id!r}")
    return event


def retry_event(session: Session, event_id: str, *, actor: str) -> Event:
    """Send a failed, parked or stuck event round again with a fresh attempt budget (audited).

    The caller publishes it after commit (`orchestrator.events.publisher.publish_now`); if that fails the
    relay does it.
    """
    event = session.exec(select(Event).where(Event.id == event_id).with_for_update()).first()
    if event is None:
        raise NotFound(f"no event with id {event_id!r}")
    if event.status not in RETRYABLE:
        raise Conflict(
            f"event {event_id} is {event.status.value}; only failed, parked or unfinished events are retried"
        )
    previous = event.status
    event.status = EventStatus.pending
    event.attempts = 0
    # Counted as sent now: the caller publishes it at once, so the relay waits its pending window first
    # (an old received_at alone would make it look overdue, and a duplicate go out beside the publish).
    event.published_at = utcnow()
    session.add(event)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.event_retried,
        app_id=event.app_id,
        reason=f"re-driven from {previous.value}",
        data={"event_id": event.id, "type": event.type, "last_error": event.last_error},
    )
    return event


def describe_event(event: Event) -> dict[str, Any]:
    """The JSON view of an event for the API and CLI."""
    return {
        "id": event.id,
        "type": event.type,
        "app_id": event.app_id,
        "source": event.source,
        "status": event.status.value,
        "attempts": event.attempts,
        "last_error": event.last_error,
        "received_at": event.received_at.isoformat(),
        "published_at": event.published_at.isoformat() if event.published_at else None,
        "handled_at": event.handled_at.isoformat() if event.handled_at else None,
        "payload": event.payload,
    }
