"""An index on llm_usage.at for the connector KPIs' windows (orchestrator/kpis/models.py)

Revision ID: kpis02
Revises: kpis01
Create Date: 2026-12-05 02:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "kpis02"
down_revision: str | Sequence[str] | None = "kpis01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_llm_usage_at", "llm_usage", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_llm_usage_at", table_name="llm_usage")
