"""Per-app milestones of the audit trail: a rollup kept beside the chain, in the same transaction.

`audit.service.record` hands every entry it appends to `defer`, written with it at the next flush,
so an app's row here always says what its entries say: when it was first approved into production,
first escalated to engineering, and last orphaned. The KPIs (orchestrator.kpis.service) read one
narrow row per app instead of searching a million audit entries for the first or last one of an
action (docs/kpis.md, "How it stays fast"). The row is derived data: migration kpis03 builds it
from the trail and `rebuild` does it again on demand; the chain, not this table, is the record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, case, delete, event, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.sql import ColumnElement
from sqlmodel import Field, Session, SQLModel

from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.clock import UTCDateTime

# action -> (column, keep the earliest or the latest time)
TRACKED: dict[str, tuple[str, str]] = {
    AuditAction.lifecycle_approve.value: ("first_approved_at", "first"),
    AuditAction.lifecycle_escalate.value: ("first_escalated_at", "first"),
    AuditAction.lifecycle_orphan.value: ("last_orphaned_at", "last"),
}


class AppMilestone(SQLModel, table=True):
    """When one app first or last had each tracked audit action (null: never)."""

    __tablename__ = "app_milestone"
    __table_args__ = (Index("ix_app_milestone_first_approved_at", "first_approved_at"),)

    app_id: str = Field(primary_key=True, max_length=64)
    first_approved_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    first_escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    last_orphaned_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)


def _keep(which: str, current: Any, new: Any) -> ColumnElement[Any]:
    """The earlier (or later) of the stored and the new time; portable (no LEAST on SQLite)."""
    better = new < current if which == "first" else new > current
    return case((current.is_(None), new), (better, new), else_=current)


# session.info key: the entries appended since the session's last flush whose milestones are unwritten.
_PENDING = "audit_milestones_pending"


def defer(session: Session, entry: AuditEntry) -> None:
    """Note an appended entry for its app's milestones, written at the session's next flush — the
    flush that writes the entry — in one statement per milestone however many apps (an owner leaving
    with hundreds of apps orphans them all in one transaction)."""
    if entry.app_id is not None and entry.action in TRACKED:
        session.info.setdefault(_PENDING, []).append(entry)


@event.listens_for(OrmSession, "before_flush")
def _write_pending(session: OrmSession, flush_context: Any, instances: Any) -> None:
    pending: list[AuditEntry] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    folded: dict[str, dict[str, datetime]] = {}
    for entry in pending:
        if entry not in session:
            continue  # taken away again by a rolled-back savepoint
        column, which = TRACKED[entry.action]
        by_app = folded.setdefault(column, {})
        known = by_app.get(str(entry.app_id))
        if known is None or (entry.at < known if which == "first" else entry.at > known):
            by_app[str(entry.app_id)] = entry.at
    connection = session.connection()
    for column, by_app in folded.items():
        connection.execute(_upsert(connection.dialect.name, column, by_app))


def _upsert(dialect: str, column: str, times: dict[str, datetime]) -> Any:
    which = next(w for c, w in TRACKED.values() if c == column)
    maker: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = maker(AppMilestone).values([{"app_id": app_id, column: at} for app_id, at in times.items()])
    current = getattr(AppMilestone.__table__.c, column)  # type: ignore[attr-defined]
    return stmt.on_conflict_do_update(
        index_elements=["app_id"], set_={column: _keep(which, current, stmt.excluded[column])}
    )


def backfill_select(audit_table: Any) -> Any:
    """One row per app with any tracked entry, computed from the audit trail (for migrations and rebuild)."""
    a = audit_table.c

    def fold(action: str, agg: Any) -> Any:
        return agg(case((a.action == action, a.at), else_=None))

    columns = {"first": func.min, "last": func.max}
    return (
        select(
            a.app_id,
            *(fold(action, columns[which]).label(column) for action, (column, which) in TRACKED.items()),
        )
        .where(a.app_id.is_not(None), a.action.in_(list(TRACKED)))
        .group_by(a.app_id)
    )


def rebuild(session: Session) -> None:
    """Recompute every row from the audit trail (after a bulk load that bypassed `record`)."""
    session.execute(delete(AppMilestone))
    names = ["app_id", *(column for column, _ in TRACKED.values())]
    table = AppMilestone.__table__  # type: ignore[attr-defined]
    session.execute(insert(table).from_select(names, backfill_select(AuditEntry.__table__)))  # type: ignore[attr-defined]
