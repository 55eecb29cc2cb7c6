"""The per-app milestones (orchestrator.audit.milestones) say what the audit trail says, kept and backfilled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alembic import command
from sqlmodel import select

from orchestrator.audit import milestones
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.milestones import AppMilestone
from orchestrator.audit.models import AuditEntry
from orchestrator.clock import as_utc
from orchestrator.db import alembic_config, reset_engines, session_scope
from tests.kpis import history
from tests.kpis.history import T0, D, H


def _rows() -> dict[str, tuple[datetime | None, ...]]:
    with session_scope(write=False) as session:
        return {
            m.app_id: (m.first_approved_at, m.first_escalated_at, m.last_orphaned_at)
            for m in session.exec(select(AppMilestone))
        }


def _from_trail() -> dict[str, tuple[Any, ...]]:
    """The milestones recomputed from the audit entries (the migration's and rebuild's query)."""
    with session_scope(write=False) as session:
        found = session.execute(milestones.backfill_select(AuditEntry.__table__))  # type: ignore[attr-defined]
        return {app: tuple(None if v is None else as_utc(v) for v in rest) for app, *rest in found}


def test_every_tracked_entry_moves_its_apps_milestone_in_the_same_transaction(db_url: str) -> None:
    """After the known history, each app's row is its first approval, first escalation and last orphaning."""
    history.build()
    rows = _rows()
    assert rows["alpha"] == (T0 + 5 * H, None, None)
    assert rows["eps"] == (T0 + 3 * D, None, None)
    assert rows["delta"] == (None, T0 + 3 * D + H, None)
    assert rows["zeta"] == (T0 - 19 * D, None, T0 + 2 * D)
    assert "theta" not in rows  # nothing tracked happened to it
    assert rows == _from_trail()


def test_the_earliest_approval_and_the_latest_orphaning_win_whatever_the_order(db_url: str) -> None:
    """An entry written with an earlier time than one already folded in still counts where it belongs."""
    steps = [
        (AuditAction.lifecycle_approve, T0 + 2 * D),
        (AuditAction.lifecycle_approve, T0 + D),
        (AuditAction.lifecycle_approve, T0 + 3 * D),
        (AuditAction.lifecycle_orphan, T0 + 2 * D),
        (AuditAction.lifecycle_orphan, T0 + 4 * D),
        (AuditAction.lifecycle_orphan, T0 + 3 * D),
        (AuditAction.lifecycle_submit_for_review, T0 + 9 * D),  # not tracked
    ]
    for action, moment in steps:
        with session_scope() as session:
            audit.record(session, actor="policy", action=action, app_id="app-x", at=moment)
    assert _rows() == {"app-x": (T0 + D, None, T0 + 4 * D)}
    assert _rows() == _from_trail()


def test_the_migration_backfills_from_the_trail_and_rebuild_agrees(db_url: str) -> None:
    """Downgrading drops the table; upgrading again rebuilds every row from the audit entries."""
    for app_id, action, moment in [
        ("a", AuditAction.lifecycle_approve, T0 + D),
        ("a", AuditAction.lifecycle_approve, T0 + 2 * D),
        ("b", AuditAction.lifecycle_escalate, T0 + H),
        ("b", AuditAction.lifecycle_orphan, T0 + 2 * H),
        ("b", AuditAction.lifecycle_orphan, T0 + 3 * H),
        ("c", AuditAction.app_registered, T0),
    ]:
        with session_scope() as session:
            audit.record(session, actor="policy", action=action, app_id=app_id, at=moment)
    kept = _rows()
    assert kept == {"a": (T0 + D, None, None), "b": (None, T0 + H, T0 + 3 * H)}
    reset_engines()  # no pooled connection in the way of SQLite's DDL
    command.downgrade(alembic_config(db_url), "kpis02")
    command.upgrade(alembic_config(db_url), "head")
    assert _rows() == kept
    with session_scope() as session:
        milestones.rebuild(session)
    assert _rows() == kept
