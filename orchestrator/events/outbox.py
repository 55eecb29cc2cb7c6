"""The transactional outbox: lifecycle events are rows written in the caller's transaction.

`emit` inserts an Event under its unique dedup key; a duplicate key returns the first event and
`duplicate=True` instead of a second row. Publishing to the broker happens after commit (see
`orchestrator.events.publisher`), and a relay re-publishes what was committed but never handled.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from orchestrator.clock import utcnow
from orchestrator.db import after_commit_batch, discard_after_commit, new_id
from orchestrator.events.models import Event, EventStatus
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
class NewEvent:
    """One event for `emit_many` (the arguments of `emit`)."""

    type: EventType | str
    source: str
    app_id: str | None = None
    payload: dict[str, Any] | None = None
    dedup_key: str | None = None


@dataclass(frozen=True)
class Emitted:
    """The event's id, whether it already existed under the same dedup key, and the event itself.

    A new event is written with a Core INSERT, so `event` is not in the session: read it (its id,
    above all), do not change it expecting the row to follow. It is built only when asked for: a
    table model's constructor costs more than the INSERT's own Python work (issue 19).
    """

    event_id: str
    duplicate: bool
    _row: dict[str, Any] | Event = field(repr=False, compare=False)

    @cached_property
    def event(self) -> Event:
        """The event (for a new one, built from the values inserted)."""
        return self._row if isinstance(self._row, Event) else Event(**self._row)


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
    values = _row_values(NewEvent(type, source, app_id, payload, dedup_key))
    inserted = session.connection().execute(_insert_statement(session), values).first()
    if inserted is None:
        existing = session.exec(select(Event).where(Event.dedup_key == values["dedup_key"])).one()
        return Emitted(existing.id, True, existing)
    after_commit_batch(session, after_commit, values["id"])
    return Emitted(values["id"], False, values)


def emit_many(session: Session, events: list[NewEvent]) -> list[Emitted]:
    """`emit` for several events at once: one multi-row INSERT, answers in the order given.

    A dedup key taken already — by an earlier transaction or by an earlier event of the same list —
    yields the first event with `duplicate=True`, as `emit` would one at a time. Every type is
    checked before anything is written.
    """
    if not events:
        return []
    rows = [_row_values(event) for event in events]
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # One statement whose text never changes, whatever the number of rows: psycopg prepares it once.
        # (SQLAlchemy's multi-row VALUES has a text per row count, and past 50 parameters psycopg
        # neither caches its parsing nor prepares it.)
        columns = {name: [row[name] for row in rows] for name in _UNNEST_COLUMNS}
        columns["payload"] = [json.dumps(payload) for payload in columns["payload"]]
        inserted_keys = {key for _, key in connection.exec_driver_sql(_PG_INSERT_MANY, columns)}
    elif len(rows) == 1:
        inserted_keys = {row.dedup_key for row in connection.execute(_insert_statement(session), rows[0])}
    else:
        # executemany with RETURNING: SQLAlchemy sends it as one INSERT … VALUES (…), (…) ("insertmanyvalues").
        inserted_keys = {row.dedup_key for row in connection.execute(_insert_statement(session), rows)}
    new_rows: dict[str, dict[str, Any]] = {}  # dedup key → the row this call inserted under it
    for row in rows:
        if row["dedup_key"] in inserted_keys:
            new_rows.setdefault(row["dedup_key"], row)
    taken = [row["dedup_key"] for row in rows if row["dedup_key"] not in new_rows]
    existing: dict[str, Event] = {}
    if taken:
        existing = {
            event.dedup_key: event for event in session.exec(select(Event).where(col(Event.dedup_key).in_(taken)))
        }
    out: list[Emitted] = []
    for row in rows:
        key = row["dedup_key"]
        first = new_rows.get(key)
        if first is row:
            after_commit_batch(session, after_commit, row["id"])
            out.append(Emitted(row["id"], False, row))
        elif first is not None:  # the key repeats one inserted earlier in this call
            out.append(Emitted(first["id"], True, first))
        else:
            out.append(Emitted(existing[key].id, True, existing[key]))
    return out


_UNNEST_COLUMNS = ("id", "type", "app_id", "source", "dedup_key", "payload", "received_at")
# Arrays in binary (%(…)b): psycopg's text format escapes every element with a regular expression.
# Rows in the order given (WITH ORDINALITY), so a dedup key twice in one call keeps its first row, as
# `emit` one at a time would; DO NOTHING skips the second (only DO UPDATE refuses such a repeat).
_PG_INSERT_MANY = """\
INSERT INTO event (id, type, app_id, source, dedup_key, payload, status, attempts, received_at)
SELECT t.id, t.type, t.app_id, t.source, t.dedup_key, t.payload::json, 'pending', 0, t.received_at
FROM unnest(%(id)b::varchar[], %(type)b::varchar[], %(app_id)b::varchar[], %(source)b::varchar[],
            %(dedup_key)b::varchar[], %(payload)b::text[], %(received_at)b::timestamptz[])
     WITH ORDINALITY AS t(id, type, app_id, source, dedup_key, payload, received_at, n)
ORDER BY t.n
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key"""


def _row_values(event: NewEvent) -> dict[str, Any]:
    """The event table's row for `event`, with Event's defaults, built without the table model."""
    known = str(event_type(event.type))  # the plain value: it is what the row holds once read back
    return {
        "id": new_id(),
        "type": known,
        "app_id": event.app_id,
        "source": event.source,
        "dedup_key": event.dedup_key or f"{event.source}:{new_id()}",
        "payload": event.payload or {},
        "status": EventStatus.pending,
        "attempts": 0,
        "last_error": None,
        "received_at": utcnow(),
        "published_at": None,
        "handled_at": None,
    }


def forget(session: Session, event_ids: set[str]) -> None:
    """Do not publish these events after commit (they were settled in the same transaction)."""
    discard_after_commit(session, after_commit, lambda event_id: event_id in event_ids)


_EVENT_TABLE: Table = Event.__table__  # type: ignore[attr-defined]
_INSERTS: dict[str, Any] = {}


def _insert_statement(session: Session) -> Any:
    """INSERT … ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key, built once per dialect.

    Values are bound at execution time, so SQLAlchemy compiles it once and psycopg prepares it.
    """
    dialect = session.get_bind().dialect.name
    statement = _INSERTS.get(dialect)
    if statement is None:
        insert = sqlite_insert if dialect == "sqlite" else pg_insert
        statement = _INSERTS[dialect] = (
            insert(_EVENT_TABLE)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(_EVENT_TABLE.c.id, _EVENT_TABLE.c.dedup_key)
        )
    return statement
