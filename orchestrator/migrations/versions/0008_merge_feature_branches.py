"""merge feature branches

Revision ID: 0008
Revises: 0004, 0005, 0006, 0007
Create Date: 2026-11-29 11:33:16.829663
"""

from collections.abc import Sequence

import sqlmodel  # noqa: F401  (autogenerate renders sqlmodel.sql.sqltypes.AutoString)

import orchestrator.clock  # noqa: F401  (column type UTCDateTime)

revision: str = "0008"
down_revision: str | Sequence[str] | None = ("0004", "0005", "0006", "0007")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
