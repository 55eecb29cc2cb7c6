"""Approval routes under /api/v1/approvals: the web/CLI path to the same decisions as the Slack buttons.

The decider is the token's person, under the same rules as a Slack click (approver of the data
class, not an owner, not the requester). A refused attempt is audited and answered 403; a request
decided by someone else first is answered 409 naming who decided.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import col, select

from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.approvals.service import Decision, Result, decide
from orchestrator.auth.models import ApiToken, Role
from orchestrator.catalog.models import MicroApp
from orchestrator.db import session_scope
from orchestrator.errors import Conflict, Forbidden
from orchestrator.http.deps import PolicyDep, ReadSession, RowId, role_at_least
from orchestrator.http.schemas import InputBody

router = APIRouter(prefix="/api/v1/approvals", tags=["approvals"])
Approver = Annotated[ApiToken, role_at_least(Role.approver)]


class ApprovalRead(BaseModel):
    """An approval request as the API shows it."""

    id: int
    app_id: str
    app_name: str | None
    data_class: str | None
    kind: str
    status: str
    cycle: int
    requested_by: str
    decided_by: str | None
    reason: str | None
    created_at: datetime
    decided_at: datetime | None
    channel: str | None
    message_ts: str | None
    review: dict[str, Any] | None

    @classmethod
    def of(cls, approval: ApprovalRequest, app: MicroApp | None) -> ApprovalRead:
        """Build from the rows."""
        assert approval.id is not None
        return cls(
            id=approval.id,
            app_id=approval.app_id,
            app_name=app.name if app else None,
            data_class=str(app.data_class) if app else None,
            kind=str(approval.kind),
            status=str(approval.status),
            cycle=approval.cycle,
            requested_by=approval.requested_by,
            decided_by=approval.decided_by,
            reason=approval.reason,
            created_at=approval.created_at,
            decided_at=approval.decided_at,
            channel=approval.channel,
            message_ts=approval.message_ts,
            review=approval.payload.get("review"),
        )


class ApprovalPage(BaseModel):
    """A list of approval requests, oldest first."""

    items: list[ApprovalRead]


class DecisionBody(InputBody):
    """An approver's answer; a reason is required unless approving."""

    decision: Decision
    reason: str = Field(default="", max_length=2000)


@router.get("", response_model=ApprovalPage)
def list_approvals(
    session: ReadSession,
    token: Approver,
    status: ApprovalStatus | None = ApprovalStatus.pending,
    app_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ApprovalPage:
    """Approval requests (pending by default), oldest first."""
    query = select(ApprovalRequest, MicroApp).join(MicroApp, col(MicroApp.id) == ApprovalRequest.app_id, isouter=True)
    if status is not None:
        query = query.where(ApprovalRequest.status == status)
    if app_id:
        query = query.where(ApprovalRequest.app_id == app_id)
    rows = session.exec(query.order_by(col(ApprovalRequest.id)).limit(limit)).all()
    return ApprovalPage(items=[ApprovalRead.of(a, app) for a, app in rows])


@router.post("/{approval_id}/decision", response_model=ApprovalRead)
def post_decision(approval_id: RowId, body: DecisionBody, token: Approver, policy: PolicyDep) -> ApprovalRead:
    """Approve, reject or request changes, as the token's person (403 not allowed, 409 already decided)."""
    if token.person_email is None:
        raise Forbidden("a decision is made by a person: use a token created with --email")
    with session_scope() as session:
        outcome = decide(
            session,
            approval_id,
            decision=body.decision,
            actor=token.person_email,
            via="api",
            reason=body.reason,
            policy=policy,
        )
        result = ApprovalRead.of(outcome.approval, session.get(MicroApp, outcome.approval.app_id))
    # Raised after the commit, so the audit entry of a refused attempt is kept.
    if outcome.result is Result.not_allowed:
        raise Forbidden(outcome.message)
    if outcome.result is Result.already_decided:
        message = f"already decided by {result.decided_by} ({result.status})"
        raise Conflict(message, detail={"message": message, "decided_by": result.decided_by, "status": result.status})
    return result
