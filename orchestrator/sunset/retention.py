"""Retention of archives: the purge when the data class's retention is over, and legal holds.

A purge deletes every archive of the app whose `retain_until` has passed — unless the app is on
legal hold, which is checked under the app's row lock in the same transaction that records the
purge, so a hold placed concurrently wins. Each purge, skip and hold change is in the audit chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import POLICY_ACTOR, Action, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.db import session_scope
from orchestrator.integrations.archive import ArchiveStore, store_from_settings
from orchestrator.sunset import archive
from orchestrator.sunset.models import ArchiveRecord, ArchiveStatus
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline, DeadlineKind, DeadlineStatus


@dataclass
class PurgeResult:
    """What a purge did."""

    held: bool = False
    purged: list[int] = field(default_factory=list)
    not_due: list[int] = field(default_factory=list)


def _locked_app(session: Session, app_id: str) -> MicroApp:
    query = select(MicroApp).where(MicroApp.id == app_id).with_for_update()
    app = session.exec(query.execution_options(populate_existing=True)).first()
    if app is None:
        return catalog.get_app(session, app_id)  # raises NotFound
    return app


def overdue_purges(session: Session, *, now: datetime | None = None) -> list[str]:
    """Apps holding a stored archive past its retention and not on legal hold (a lost purge is retried)."""
    now = now or utcnow()
    rows = session.exec(
        select(ArchiveRecord.app_id)
        .join(MicroApp, col(MicroApp.id) == col(ArchiveRecord.app_id))
        .where(ArchiveRecord.status == ArchiveStatus.stored)
        .where(col(ArchiveRecord.retain_until) < now)
        .where(MicroApp.legal_hold == False)  # noqa: E712 - SQL comparison
        .distinct()
    ).all()
    return sorted(rows)


def purge(
    app_id: str,
    *,
    actor: str = POLICY_ACTOR,
    reason: str = "retention period over",
    store: ArchiveStore | None = None,
    now: datetime | None = None,
) -> PurgeResult:
    """Delete the app's archives whose retention is over, unless it is on legal hold; record it all."""
    store = store or store_from_settings()
    now = now or utcnow()
    result = PurgeResult()
    with session_scope(write=False) as session:
        ids = [r.id for r in archive.stored_archives(session, app_id) if r.id is not None]
    for archive_id in ids:
        with session_scope() as session:
            app = _locked_app(session, app_id)
            row = session.get(ArchiveRecord, archive_id)
            if row is None or row.status is not ArchiveStatus.stored:
                continue
            if row.retain_until is not None and as_utc(row.retain_until) > now:
                result.not_due.append(archive_id)
                continue
            if app.legal_hold:
                result.held = True
                audit.record(
                    session, actor=actor, action=AuditAction.archive_purge_skipped, app_id=app_id,
                    reason="legal hold", data={"archive_id": archive_id},
                )  # fmt: skip
                continue
            # Deleted inside the transaction: if the commit fails, a retry finds the object gone
            # and records the purge then.
            existed = store.delete(row.key)
            archive.mark_purged(session, row, actor=actor, reason=reason, existed=existed)
            result.purged.append(archive_id)
    if result.purged:
        with session_scope() as session:
            app = catalog.get_app(session, app_id)
            if app.stage is Stage.retired:
                catalog.apply_action(
                    session, app, Action.purge, actor=actor, reason=reason, policy=get_policy(),
                    data={"archives": result.purged},
                )  # fmt: skip
    return result


def set_hold(session: Session, app: MicroApp, *, on: bool, actor: str, reason: str) -> bool:
    """Place or lift a legal hold; lifting re-arms the purge of archives already past retention."""
    changed = app.legal_hold != on
    app.legal_hold = on
    app.version += 1
    app.updated_at = utcnow()
    session.add(app)
    audit.record(
        session, actor=actor, action=AuditAction.archive_hold_placed if on else AuditAction.archive_hold_lifted,
        app_id=app.id, reason=reason, data={"changed": changed},
    )  # fmt: skip
    if not on:
        _rearm_purges(session, app)
    return changed


def _rearm_purges(session: Session, app: MicroApp) -> None:
    now = utcnow()
    for row in archive.stored_archives(session, app.id):
        pending = session.exec(
            select(Deadline.id).where(
                Deadline.app_id == app.id,
                Deadline.kind == DeadlineKind.retention_purge,
                Deadline.ref == str(row.id),
                Deadline.status == DeadlineStatus.pending,
            )
        ).first()
        if pending is None:
            due = max(as_utc(row.retain_until), now) if row.retain_until else now
            deadlines.schedule(
                session, kind=DeadlineKind.retention_purge, due_at=due, app_id=app.id, ref=str(row.id),
                payload={"archive_id": row.id},
            )  # fmt: skip
