"""idp_user: the people an identity provider provisions over SCIM

Revision ID: scim01
Revises: catalog_app_owner
Create Date: 2026-12-05 01:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import orchestrator.clock

revision: str = "scim01"
down_revision: str | Sequence[str] | None = "catalog_app_owner"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idp_user",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("user_name", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("manager_ref", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("deactivations", sa.Integer(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("created_at", orchestrator.clock.UTCDateTime(), nullable=False),
        sa.Column("updated_at", orchestrator.clock.UTCDateTime(), nullable=False),
        sa.Column("deactivated_at", orchestrator.clock.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_idp_user_external_id", "idp_user", ["external_id"], unique=False)
    op.create_index("ix_idp_user_user_name", "idp_user", ["user_name"], unique=True)
    op.create_index("ix_idp_user_email", "idp_user", ["email"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_idp_user_email", table_name="idp_user")
    op.drop_index("ix_idp_user_user_name", table_name="idp_user")
    op.drop_index("ix_idp_user_external_id", table_name="idp_user")
    op.drop_table("idp_user")
