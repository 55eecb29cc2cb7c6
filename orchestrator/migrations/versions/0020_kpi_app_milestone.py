"""app_milestone: per-app first approval, first escalation and last orphaning, backfilled from the audit trail

Kept by orchestrator.audit.service.record in the same transaction as the entry (orchestrator/audit/milestones.py);
the KPIs read it instead of searching the audit trail (docs/kpis.md, "How it stays fast").

Revision ID: kpis03
Revises: kpis02
Create Date: 2026-12-05 23:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import orchestrator.clock

revision: str = "kpis03"
down_revision: str | Sequence[str] | None = "kpis02"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of orchestrator.audit.milestones.TRACKED as of this revision: action -> (column, aggregate).
TRACKED = {
    "lifecycle.approve": ("first_approved_at", "min"),
    "lifecycle.escalate": ("first_escalated_at", "min"),
    "lifecycle.orphan": ("last_orphaned_at", "max"),
}


def upgrade() -> None:
    op.create_table(
        "app_milestone",
        sa.Column("app_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("first_approved_at", orchestrator.clock.UTCDateTime(timezone=True), nullable=True),
        sa.Column("first_escalated_at", orchestrator.clock.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_orphaned_at", orchestrator.clock.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("app_id"),
    )
    op.create_index("ix_app_milestone_first_approved_at", "app_milestone", ["first_approved_at"], unique=False)
    folds = ", ".join(f"{agg}(CASE WHEN action = '{action}' THEN at END)" for action, (_, agg) in TRACKED.items())
    columns = ", ".join(column for column, _ in TRACKED.values())
    actions = ", ".join(f"'{action}'" for action in TRACKED)
    op.execute(
        f"INSERT INTO app_milestone (app_id, {columns}) SELECT app_id, {folds} FROM audit_entry"
        f" WHERE app_id IS NOT NULL AND action IN ({actions}) GROUP BY app_id"
    )


def downgrade() -> None:
    op.drop_index("ix_app_milestone_first_approved_at", table_name="app_milestone")
    op.drop_table("app_milestone")
