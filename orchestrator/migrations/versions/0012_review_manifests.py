"""the manifest a review read (adopted on approval) and the one sent through the API to review

Revision ID: r12_review_manifests
Revises: 0011_registered_by
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "r12_review_manifests"
down_revision: str | Sequence[str] | None = "0011_registered_by"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proposed_manifest", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("manifest", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review", schema=None) as batch_op:
        batch_op.drop_column("manifest")
        batch_op.drop_column("proposed_manifest")
