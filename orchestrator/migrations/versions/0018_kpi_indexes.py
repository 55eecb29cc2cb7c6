"""Indexes of the KPI queries (orchestrator/kpis/models.py): windows over audit entries, findings,
approval decisions and registrations

Revision ID: kpis01
Revises: llm01
Create Date: 2026-12-05 01:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "kpis01"
down_revision: str | Sequence[str] | None = "llm01"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = [
    ("ix_audit_entry_action_at", "audit_entry", ["action", "at"]),
    ("ix_audit_entry_action_app_at", "audit_entry", ["action", "app_id", "at"]),
    ("ix_review_finding_first_seen_at", "review_finding", ["first_seen_at"]),
    ("ix_review_finding_resolved_at", "review_finding", ["resolved_at"]),
    ("ix_approval_request_decided_at", "approval_request", ["decided_at"]),
    ("ix_approval_request_created_at", "approval_request", ["created_at"]),
    ("ix_microapp_created_at", "microapp", ["created_at"]),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
