"""llm_usage: one row per call through the LLM connector (never the prompt)

Revision ID: llm01
Revises: scim01
Create Date: 2026-12-05 01:16:44.045577
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import orchestrator.clock

revision: str = "llm01"
down_revision: str | Sequence[str] | None = "scim01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "llm_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", orchestrator.clock.UTCDateTime(timezone=True), nullable=False),
        sa.Column("app_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("endpoint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("streamed", sa.Boolean(), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "ok", "blocked", "limited", "upstream_error", "cancelled", name="outcome", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column("redactions", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("llm_usage", schema=None) as batch_op:
        batch_op.create_index("ix_llm_usage_app_at", ["app_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_llm_usage_outcome"), ["outcome"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("llm_usage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_llm_usage_outcome"))
        batch_op.drop_index("ix_llm_usage_app_at")

    op.drop_table("llm_usage")
