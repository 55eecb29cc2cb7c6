"""Indexes the KPI queries need on the tables of the domains they read, and the KPI snapshots' history table.

They live here, beside the queries that use them, rather than in each domain's models: the catalog,
audit, approvals and reviews need none of them for their own work. Each one turns a full scan of a
large table into a range scan of the window (see docs/kpis.md, "How it stays fast").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, String, Table
from sqlmodel import Field, SQLModel, col

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.milestones import AppMilestone
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import UTCDateTime
from orchestrator.llm.models import LlmUsage
from orchestrator.reviews.models import ReviewFinding

INDEXES = (
    # The entries of one action in a window: approvals, retirements, inactivity.
    Index("ix_audit_entry_action_at", col(AuditEntry.action), col(AuditEntry.at)),
    # Has this app ever had this action (before then)? First approvals, escalations, orphaned since.
    Index("ix_audit_entry_action_app_at", col(AuditEntry.action), col(AuditEntry.app_id), col(AuditEntry.at)),
    Index("ix_review_finding_first_seen_at", col(ReviewFinding.first_seen_at)),
    Index("ix_review_finding_resolved_at", col(ReviewFinding.resolved_at)),
    Index("ix_approval_request_decided_at", col(ApprovalRequest.decided_at)),
    Index("ix_approval_request_created_at", col(ApprovalRequest.created_at)),
    Index("ix_microapp_created_at", col(MicroApp.created_at)),
    # The connector's calls in a window, whichever app (the connector KPIs).
    Index("ix_llm_usage_at", col(LlmUsage.at)),
)


def _copy(table: Table, name: str, type_: Any) -> Column[Any]:
    """Declare a copy column on another domain's table (idempotent), for the KPIs to read.

    Added to the table after its class is mapped, so the ORM neither writes nor reads it: the
    database fills it (the triggers of migration kpis05), whoever inserts the row.
    """
    if name not in table.c:
        table.append_column(Column(name, type_, nullable=True))
    return table.c[name]


def _table(model: Any) -> Table:
    return model.__table__  # type: ignore[no-any-return]


# Copies of the app's current data class (and registration time) on the rows the KPIs break down by it:
# the KPIs read their window's rows alone, not each one joined to its app. NULL exactly when the app does
# not exist (the inner join they replace would drop the row). Kept by the database: migration kpis05's
# triggers fill them on insert and rewrite an app's rows when its class changes (docs/kpis.md).
REQUEST_APP_CLASS = _copy(_table(ApprovalRequest), "app_data_class", String(32))
REQUEST_APP_CREATED = _copy(_table(ApprovalRequest), "app_created_at", UTCDateTime())
FINDING_APP_CLASS = _copy(_table(ReviewFinding), "app_data_class", String(32))
USAGE_APP_CLASS = _copy(_table(LlmUsage), "app_data_class", String(32))
MILESTONE_APP_CLASS = _copy(_table(AppMilestone), "app_data_class", String(32))
MILESTONE_APP_CREATED = _copy(_table(AppMilestone), "app_created_at", UTCDateTime())


class KpiSnapshot(SQLModel, table=True):
    """One snapshot KPI's value over the whole catalog at one moment, kept so it can be charted over time.

    The scheduler's KPI refresh writes one row per snapshot KPI at most once per KPI_HISTORY_SECONDS
    (orchestrator.kpis.snapshots); windowed KPIs need none, their history is in their own records.
    """

    __tablename__ = "kpi_snapshot"
    __table_args__ = (Index("ix_kpi_snapshot_kpi_taken_at", "kpi", "taken_at"),)

    id: int | None = Field(default=None, primary_key=True)
    taken_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    kpi: str = Field(max_length=64)
    value: float | None = Field(default=None)
    count: int | None = Field(default=None)
