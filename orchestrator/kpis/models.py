"""Indexes the KPI queries need, on the tables of the domains they read (no table of their own).

They live here, beside the queries that use them, rather than in each domain's models: the catalog,
audit, approvals and reviews need none of them for their own work. Each one turns a full scan of a
large table into a range scan of the window (see docs/kpis.md, "How it stays fast").
"""

from __future__ import annotations

from sqlalchemy import Index
from sqlmodel import col

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp
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
