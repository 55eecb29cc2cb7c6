"""The transactional outbox: lifecycle events are rows written in the caller's transaction.

`emit` inserts an Event under its unique dedup key; a duplicate key returns the first event and
`duplicate=True` instead of a second row. Publishing to the broker happens after commit (see
`orchestrator.pipeline`), and a relay re-publishes what was committed but never handled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from orchestrator.models import Event, new_id

# Event names are part of the public interface (DESIGN.md, "Lifecycle").
EVENT_TYPES = frozenset(
    {
        "app.created",
        "app.updated",
        "review.due",
        "review.completed",
        "approval.decided",
        "owner.left",
        "app.expiring",
        "app.expired",
        "app.retire_requested",
        "extension.requested",
    }
)


Publisher = Callable[[list[str]], None]
_publishers: list[Publisher] = []


def add_publisher(publisher: Publisher) -> None:
    """Register a function called with the ids of events right after their transaction commits."""
    if publisher not in _publishers:
        _publishers.append(publisher)


def remove_publisher(publisher: Publisher) -> None:
    """Unregister a publisher (tests)."""
    if publisher in _publishers:
        _publishers.remove(publisher)


def after_commit(event_ids: list[str]) -> None:
    """Hand committed event ids to the publishers; a failure here loses nothing (the relay retries)."""
    for publisher in list(_publishers):
        try:
            publisher(event_ids)
        except Exception as exc:  # the relay re-publishes anything left unhandled
            from orchestrator.logs import get_logger

            get_logger(__name__).warning("publish after commit failed", error=str(exc), events=len(event_ids))


@dataclass(frozen=True)
class Emitted:
    """The event row and whether it already existed under the same dedup key."""

    event: Event
    duplicate: bool


def emit(
    session: Session,
    *,
    type: str,
    source: str,
    app_id: str | None = None,
    payload: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> Emitted:
    """Write an event in the caller's transaction; a repeated dedup key yields the first event."""
    key = dedup_key or f"{source}:{new_id()}"
    existing = session.exec(select(Event).where(Event.dedup_key == key)).first()
    if existing is not None:
        return Emitted(existing, duplicate=True)
    event = Event(type=type, source=source, app_id=app_id, payload=payload or {}, dedup_key=key)
    try:
        with session.begin_nested():
            session.add(event)
            session.flush()
    except IntegrityError:
        # A concurrent writer inserted the same key between our read and our insert.
        existing = session.exec(select(Event).where(Event.dedup_key == key)).one()
        return Emitted(existing, duplicate=True)
    pending = session.info.setdefault("outbox_pending", [])
    pending.append(event.id)
    return Emitted(event, duplicate=False)
