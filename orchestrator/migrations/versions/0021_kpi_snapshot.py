"""kpi_snapshot: the snapshot KPIs' values over time, written by the scheduler's KPI refresh

Revision ID: kpis04
Revises: kpis03
Create Date: 2026-12-05 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import orchestrator.clock

revision: str = "kpis04"
down_revision: str | Sequence[str] | None = "kpis03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taken_at", orchestrator.clock.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kpi", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_kpi_snapshot_kpi_taken_at", "kpi_snapshot", ["kpi", "taken_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_kpi_snapshot_kpi_taken_at", table_name="kpi_snapshot")
    op.drop_table("kpi_snapshot")
