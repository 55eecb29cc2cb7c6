"""Read pending deadlines from the database for the scheduler (the only source of truth).

All queries return `(id, due_epoch_seconds)` pairs and go through the `(status, due_at)` index or
the primary key, so loading a horizon of 100,000 rows is one index range scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlmodel import col

from orchestrator.db import session_scope
from orchestrator.timers.models import Deadline, DeadlineStatus

Due = tuple[int, float]
_PENDING = col(Deadline.status) == DeadlineStatus.pending


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _pairs(rows: Sequence[tuple[int, datetime]]) -> list[Due]:
    return [(int(i), due.timestamp()) for i, due in rows]


def max_id() -> int:
    """The highest deadline id so far (0 when the table is empty)."""
    with session_scope(write=False) as session:
        return int(session.execute(select(func.max(col(Deadline.id)))).scalar() or 0)


def window(start: float | None, end: float) -> list[Due]:
    """Pending deadlines due in [start, end) (from the beginning of time when start is None)."""
    query = select(col(Deadline.id), col(Deadline.due_at)).where(_PENDING, col(Deadline.due_at) < _dt(end))
    if start is not None:
        query = query.where(col(Deadline.due_at) >= _dt(start))
    with session_scope(write=False) as session:
        return _pairs(session.execute(query).all())


def newer_than(after_id: int, upto_id: int, end: float) -> list[Due]:
    """Pending deadlines with an id in (after_id, upto_id] that are due before `end`."""
    query = select(col(Deadline.id), col(Deadline.due_at)).where(
        col(Deadline.id) > after_id, col(Deadline.id) <= upto_id, _PENDING, col(Deadline.due_at) < _dt(end)
    )
    with session_scope(write=False) as session:
        return _pairs(session.execute(query).all())


def by_ids(ids: Sequence[int], end: float) -> list[Due]:
    """Those of `ids` still pending and due before `end`."""
    found: list[Due] = []
    with session_scope(write=False) as session:
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start : start + 1000])
            query = select(col(Deadline.id), col(Deadline.due_at)).where(
                col(Deadline.id).in_(chunk), _PENDING, col(Deadline.due_at) < _dt(end)
            )
            found.extend(_pairs(session.execute(query).all()))
    return found


def overdue(now: float, *, after: tuple[int, datetime] | None, limit: int) -> list[tuple[int, datetime]]:
    """One page of pending deadlines due at or before `now`, oldest first, after the `after` cursor."""
    query = select(col(Deadline.id), col(Deadline.due_at)).where(_PENDING, col(Deadline.due_at) <= _dt(now))
    if after is not None:
        after_id, after_due = after
        query = query.where(
            (col(Deadline.due_at) > after_due) | ((col(Deadline.due_at) == after_due) & (col(Deadline.id) > after_id))
        )
    query = query.order_by(col(Deadline.due_at), col(Deadline.id)).limit(limit)
    with session_scope(write=False) as session:
        return [(int(i), due) for i, due in session.execute(query).all()]
