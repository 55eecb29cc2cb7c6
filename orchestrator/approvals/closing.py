"""Closing approval requests nobody can decide any more: withdrawn by a newer review, or the app left the active stages.

A closed request is `cancelled` by compare-and-set (a decision taken at the same moment stands),
audited once, its reminder/escalation deadlines cancelled, and its Slack message re-rendered through
the same `approval_update` notification a decision queues: the buttons give way to "Cancelled by …"
and the reason. The update is queued even when the message is not posted yet (or being posted):
delivery edits whatever was posted, or renders the post itself as closed.

Kept apart from `approvals.service` so the catalog can close requests when it moves an app, without
importing the decision service (which imports the catalog).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from orchestrator.approvals.models import ApprovalKind, ApprovalRequest, ApprovalStatus
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, Stage
from orchestrator.clock import utcnow
from orchestrator.notifications.models import NotificationKind
from orchestrator.notifications.service import notify
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import DeadlineKind

APPROVAL_DEADLINES = (DeadlineKind.approval_reminder, DeadlineKind.approval_escalation)


def cancel_open(
    session: Session, app_id: str, *, reason: str, actor: str, kinds: Iterable[ApprovalKind] | None = None
) -> list[int]:
    """Cancel the app's pending requests (of `kinds`, all when None); the ids cancelled here."""
    wanted = list(kinds) if kinds is not None else None
    known = deadlines.known_pending_approvals(session, app_id)  # loaded for a change to many apps
    if known is not None:
        if not known:
            return []
        if any(a.id is None for a in known):
            session.flush()
        candidates: Sequence[ApprovalRequest] = sorted(
            (a for a in known if wanted is None or a.kind in wanted), key=lambda a: a.id or 0
        )
    else:
        query = select(ApprovalRequest).where(
            col(ApprovalRequest.app_id) == app_id, col(ApprovalRequest.status) == ApprovalStatus.pending
        )
        if wanted is not None:
            query = query.where(col(ApprovalRequest.kind).in_(wanted))
        candidates = session.exec(query.order_by(col(ApprovalRequest.id))).all()
    cancelled = []
    now = utcnow()
    for approval in candidates:
        won = session.exec(
            update(ApprovalRequest)
            .where(col(ApprovalRequest.id) == approval.id, col(ApprovalRequest.status) == ApprovalStatus.pending)
            .values(status=ApprovalStatus.cancelled, decided_by=actor, decided_at=now, reason=reason)
        ).rowcount
        if not won:
            continue  # decided by someone at the same moment: theirs stands
        session.refresh(approval)
        assert approval.id is not None
        audit.record(
            session,
            actor=actor,
            action=AuditAction.approval_cancelled,
            app_id=app_id,
            reason=reason,
            data={"approval_id": approval.id, "kind": str(approval.kind)},
        )
        deadlines.cancel(session, app_id=app_id, kinds=APPROVAL_DEADLINES, ref=str(approval.id))
        notify(
            session,
            to=approval.channel or "approvals",
            text="",
            kind=NotificationKind.approval_update,
            key=f"approval:{approval.id}:update",
            app_id=app_id,
            approval_id=approval.id,
        )
        cancelled.append(approval.id)
    return cancelled


def close_on_leaving(session: Session, app_id: str, *, to_stage: Stage, actor: str) -> list[int]:
    """Cancel what an app moving to `to_stage` leaves undecidable; the ids cancelled.

    Out of the active stages no request can be decided (approving one would be an invalid
    transition), so each is closed. The one exception: an extension request stays open when the
    app enters `expiring`, the stage whose way back is that very extension.
    """
    if to_stage in ACTIVE_STAGES:
        return []
    kinds = [k for k in ApprovalKind if not (to_stage is Stage.expiring and k is ApprovalKind.extension)]
    return cancel_open(session, app_id, reason=f"closed: the app moved to {to_stage.value}", actor=actor, kinds=kinds)
