"""The transactional outbox: lifecycle events are rows written in the caller's transaction.

`emit` inserts an Event under its unique dedup key; a duplicate key returns the first event and
`duplicate=True` instead of a second row. Publishing to the broker happens after commit (see
`orchestrator.events.publisher`), and a relay re-publishes what was committed but never handled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, select

from orchestrator.db import after_commit_batch, discard_after_commit, new_id
from orchestrator.events.models import Event
from orchestrator.events.types import EventType, event_type

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
    """The event and whether it already existed under the same dedup key.

    A new event is written with a Core INSERT, so `event` is not in the session: read it (its id,
    above all), do not change it expecting the row to follow.
    """

    event: Event
    duplicate: bool


def emit(
    session: Session,
    *,
    type: EventType | str,
    source: str,
    app_id: str | None = None,
    payload: dict[str, Any] | None = None,
    dedup_key: str | None = None,
) -> Emitted:
    """Write an event in the caller's transaction; a repeated dedup key yields the first event.

    One statement in the common case: INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING id.
    On PostgreSQL a concurrent transaction inserting the same key makes it wait for that one to
    end, so the loser then reads the winner's row; no savepoint is needed. A `type` that is not an
    EventType raises ValueError before anything is written: every type has a handler (see its test).
    """
    known = str(event_type(type))  # the plain value: it is what the row holds once read back
    key = dedup_key or f"{source}:{new_id()}"
    event = Event(type=known, source=source, app_id=app_id, payload=payload or {}, dedup_key=key)
    values = {name: getattr(event, name) for name in _EVENT_TABLE.columns.keys()}
    inserted = session.connection().execute(_insert_statement(session), values).first()
    if inserted is None:
        existing = session.exec(select(Event).where(Event.dedup_key == key)).one()
        return Emitted(existing, duplicate=True)
    after_commit_batch(session, after_commit, event.id)
    return Emitted(event, duplicate=False)


def forget(session: Session, event_ids: set[str]) -> None:
    """Do not publish these events after commit (they were settled in the same transaction)."""
    discard_after_commit(session, after_commit, lambda event_id: event_id in event_ids)


_EVENT_TABLE: Table = Event.__table__  # type: ignore[attr-defined]
_INSERTS: dict[str, Any] = {}


def _insert_statement(session: Session) -> Any:
    """INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING id, built once per dialect.

    Values are bound at execution time, so SQLAlchemy compiles it once and psycopg prepares it.
    """
    dialect = session.get_bind().dialect.name
    statement = _INSERTS.get(dialect)
    if statement is None:
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        statement = _INSERTS[dialect] = (
            insert(_EVENT_TABLE).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(_EVENT_TABLE.c.id)
        )
    return statement
