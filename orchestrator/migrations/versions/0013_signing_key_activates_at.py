"""signing_key.activates_at: a rotated key is published first and signs only from then on

Revision ID: access01
Revises: r12_review_manifests
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from orchestrator.clock import UTCDateTime

revision: str = "access01"
down_revision: str | Sequence[str] | None = "r12_review_manifests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("signing_key") as batch:
        batch.add_column(sa.Column("activates_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signing_key") as batch:
        batch.drop_column("activates_at")
