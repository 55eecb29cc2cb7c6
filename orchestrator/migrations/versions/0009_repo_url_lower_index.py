"""an index on lower(repo_url), for the webhooks' case-insensitive lookup

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_microapp_repo_url_lower", "microapp", [sa.text("lower(repo_url)")], unique=False)


def downgrade() -> None:
    op.drop_index("ix_microapp_repo_url_lower", table_name="microapp")
