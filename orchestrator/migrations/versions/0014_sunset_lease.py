"""sunset_run.lease_until: the lease a worker holds (and renews) while it runs a sunset

Revision ID: ops_sunset_lease
Revises: access01
Create Date: 2026-12-04 22:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import orchestrator.clock

revision: str = "ops_sunset_lease"
down_revision: str | Sequence[str] | None = "access01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sunset_run") as batch:
        batch.add_column(sa.Column("lease_until", orchestrator.clock.UTCDateTime(), nullable=True))
        batch.create_index("ix_sunset_run_lease_until", ["lease_until"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sunset_run") as batch:
        batch.drop_index("ix_sunset_run_lease_until")
        batch.drop_column("lease_until")
