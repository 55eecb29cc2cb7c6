"""who registered each app (microapp.registered_by), backfilled from the audit trail

The registrant is a party to the app and may not decide its approvals. Existing rows take the
actor of their first `app.registered` audit entry.

Revision ID: 0011_registered_by
Revises: 0010_audit_checkpoint
Create Date: 2026-12-04 22:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_registered_by"
down_revision: str | Sequence[str] | None = "0010_audit_checkpoint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTERs, not batch mode: a batch copy of microapp on SQLite would drop its expression index.
    op.add_column("microapp", sa.Column("registered_by", sa.String(length=320), nullable=True))
    op.execute(
        "UPDATE microapp SET registered_by = ("
        " SELECT lower(a.actor) FROM audit_entry a"
        " WHERE a.app_id = microapp.id AND a.action = 'app.registered'"
        " ORDER BY a.seq LIMIT 1)"
    )


def downgrade() -> None:
    op.drop_column("microapp", "registered_by")  # SQLite ≥ 3.35 drops a column in place
