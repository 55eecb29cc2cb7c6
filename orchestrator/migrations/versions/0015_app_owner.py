"""app_owner: who owns or co-owns each app, as rows; (stage, id) and (data_class, id) indexes for filtered pages

Revision ID: catalog_app_owner
Revises: ops_sunset_lease
Create Date: 2026-12-05 01:50:00.000000
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_app_owner"
down_revision: str | Sequence[str] | None = "ops_sunset_lease"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    app_owner = op.create_table(
        "app_owner",
        sa.Column("app_id", sa.String(length=64), sa.ForeignKey("microapp.id", ondelete="CASCADE"), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("co_owner", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "email"),
    )
    op.create_index("ix_app_owner_email_app", "app_owner", ["email", "app_id"], unique=False)
    op.create_index("ix_microapp_stage_id", "microapp", ["stage", "id"], unique=False)
    op.create_index("ix_microapp_data_class_id", "microapp", ["data_class", "id"], unique=False)
    # Moves what the owner and co-owner columns hold into rows (they stay, and stay the source).
    connection = op.get_bind()
    microapp = sa.table("microapp", sa.column("id"), sa.column("owner_email"), sa.column("co_owners"))
    rows: list[dict[str, object]] = []
    for app_id, owner, co_owners in connection.execute(
        sa.select(microapp.c.id, microapp.c.owner_email, microapp.c.co_owners)
    ):
        listed = json.loads(co_owners) if isinstance(co_owners, str) else (co_owners or [])
        wanted = {str(email).lower(): True for email in listed if email}
        wanted[str(owner).lower()] = False
        rows.extend({"app_id": app_id, "email": email, "co_owner": co} for email, co in wanted.items())
        if len(rows) >= _BATCH:
            op.bulk_insert(app_owner, rows)
            rows = []
    if rows:
        op.bulk_insert(app_owner, rows)


def downgrade() -> None:
    op.drop_index("ix_microapp_data_class_id", table_name="microapp")
    op.drop_index("ix_microapp_stage_id", table_name="microapp")
    op.drop_index("ix_app_owner_email_app", table_name="app_owner")
    op.drop_table("app_owner")
