"""The decision service: who may decide an approval request, and exactly one decision per request.

Slack buttons, the API and the CLI all end up in `decide()`, under the same rules:

- the decider must be an approver (or escalation approver) of the app's data class in the policy,
  and must be neither an owner/co-owner of the app, nor the person who registered it (a party to the
  app whoever they named as its owner), nor the person who asked;
- one decision per request, guarded in the database by a compare-and-set
  (`UPDATE approval_request SET status=… WHERE id=? AND status='pending'`), so double clicks,
  retries and two approvers at the same moment yield one decision; the others learn who decided;
- after the decision, in the same transaction: one audit entry for the decision, the lifecycle
  step (approve → production with the approved review's manifest made the catalog's, reject/request
  changes → rejected, an approved extension sets the new expiry), the reminder/escalation
  deadlines cancelled, `approval.decided` emitted, and the Slack message update plus the owner's
  DM queued.

Opening, reminding and escalating live in `orchestrator.approvals.flows`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import update
from sqlmodel import Session, col

from orchestrator.approvals import closing, messages
from orchestrator.approvals.models import ApprovalKind, ApprovalRequest, ApprovalStatus
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog import updates
from orchestrator.catalog.lifecycle import Action, Stage
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.credentials import handover
from orchestrator.errors import NotFound, ValidationFailed
from orchestrator.events.outbox import emit
from orchestrator.events.types import EventType
from orchestrator.notifications.delivery import app_url, mention
from orchestrator.notifications.models import NotificationKind
from orchestrator.notifications.service import notify
from orchestrator.reviews.models import Review
from orchestrator.timers import service as deadlines

APPROVAL_DEADLINES = closing.APPROVAL_DEADLINES


class Decision(StrEnum):
    """What an approver can answer."""

    approve = "approve"
    reject = "reject"
    request_changes = "request_changes"


STATUS_OF = {
    Decision.approve: ApprovalStatus.approved,
    Decision.reject: ApprovalStatus.rejected,
    Decision.request_changes: ApprovalStatus.changes_requested,
}


class Result(StrEnum):
    """How a decision attempt ended."""

    decided = "decided"
    already_decided = "already_decided"
    not_allowed = "not_allowed"


@dataclass(frozen=True)
class Outcome:
    """The result of `decide()` and the sentence to show the person who tried."""

    result: Result
    approval: ApprovalRequest
    message: str


def approvers_of(policy: Policy, app: MicroApp) -> set[str]:
    """Everyone the policy lets decide for this app's data class."""
    group = policy.for_class(app.data_class).approver_group
    return {e.lower() for e in [*group.approvers, *group.escalation_approvers]}


def refusal(policy: Policy, app: MicroApp, approval: ApprovalRequest, actor: str | None) -> str | None:
    """Why `actor` may not decide this request, or None when they may."""
    if not actor:
        return "your Slack account is not linked to anyone in the catalog"
    actor = actor.lower()
    if actor not in approvers_of(policy, app):
        return f"you are not an approver for {app.data_class} apps"
    if actor in {o.lower() for o in app.owners}:
        return "you own or co-own this app"
    if app.registered_by and actor == app.registered_by.lower():
        # Otherwise an approver could register an app under a made-up owner and approve it themselves.
        return "you registered this app"
    if actor == approval.requested_by.lower():
        return "you asked for this decision yourself"
    return None


def has_left(session: Session, email: str) -> bool:
    """True when `email` is a catalogued person marked as gone (owner.left): they decide nothing more."""
    person = session.get(Person, email.lower())
    return person is not None and not person.active


def _gone(session: Session, actor: str | None) -> str | None:
    return "you have left the company" if actor and has_left(session, actor) else None


def decide(
    session: Session,
    approval_id: int,
    *,
    decision: Decision,
    actor: str | None,
    via: str,
    reason: str = "",
    slack_user_id: str | None = None,
    policy: Policy | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Record one decision on a pending request (see the module docstring for the rules)."""
    policy = policy or get_policy()
    now = now or utcnow()
    approval = session.get(ApprovalRequest, approval_id)
    if approval is None:
        raise NotFound(f"no approval request with id {approval_id}")
    app = catalog.get_app(session, approval.app_id)
    if approval.status != ApprovalStatus.pending:
        return _already(session, approval)
    why = refusal(policy, app, approval, actor) or _gone(session, actor)
    if why:
        audit.record(
            session,
            actor=actor or f"slack:{slack_user_id}",
            action=AuditAction.approval_refused,
            app_id=app.id,
            reason=why,
            data={"approval_id": approval_id, "decision": decision.value, "via": via, "slack_user": slack_user_id},
        )
        return Outcome(Result.not_allowed, approval, f"Not allowed: {why}.")
    assert actor is not None
    actor, reason = actor.lower(), reason.strip()
    if decision is not Decision.approve and not reason:
        detail = [{"field": "reason", "reason": "required unless approving"}]
        raise ValidationFailed("a reason is required", detail=detail)
    request_reason = approval.reason
    won = session.exec(
        update(ApprovalRequest)
        .where(col(ApprovalRequest.id) == approval_id, col(ApprovalRequest.status) == ApprovalStatus.pending)
        .values(status=STATUS_OF[decision], decided_by=actor, decided_at=now, reason=reason or None)
    ).rowcount
    session.refresh(approval)
    if not won:
        return _already(session, approval)
    if request_reason:
        approval.payload = {**approval.payload, "request_reason": request_reason}
        session.add(approval)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.approval_decided,
        app_id=app.id,
        reason=reason,
        data={"approval_id": approval_id, "kind": str(approval.kind), "decision": decision.value, "via": via},
    )
    new_expiry = _move_lifecycle(session, app, approval, decision, actor=actor, reason=reason, policy=policy, now=now)
    deadlines.cancel(session, app_id=app.id, kinds=APPROVAL_DEADLINES, ref=str(approval_id))
    deadlines.reschedule_app(session, app, policy, now=now)  # new stage or expiry: its timers follow
    _emit_decided(session, approval, app, via=via, new_expiry=new_expiry)
    _queue_messages(session, approval, app)
    return Outcome(Result.decided, approval, messages.decision_line(approval, mention(session, actor)))


def _emit_decided(
    session: Session, approval: ApprovalRequest, app: MicroApp, *, via: str, new_expiry: datetime | None
) -> None:
    emit(
        session,
        type=EventType.approval_decided,
        source=via,
        app_id=app.id,
        payload={
            "approval_id": approval.id,
            "kind": str(approval.kind),
            "decision": {v: k for k, v in STATUS_OF.items()}[ApprovalStatus(approval.status)].value,
            "status": str(approval.status),
            "decided_by": approval.decided_by,
            "reason": approval.reason or "",
            "stage": str(app.stage),
            "expires_at": new_expiry.isoformat() if new_expiry else None,
        },
        dedup_key=f"approval.decided:{approval.id}",
    )


def _already(session: Session, approval: ApprovalRequest) -> Outcome:
    who = mention(session, approval.decided_by)
    word = messages.DECISION_WORDS.get(ApprovalStatus(approval.status), ("", str(approval.status)))[1].lower()
    return Outcome(Result.already_decided, approval, f"Already decided by {who} ({word}).")


def _move_lifecycle(
    session: Session,
    app: MicroApp,
    approval: ApprovalRequest,
    decision: Decision,
    *,
    actor: str,
    reason: str,
    policy: Policy,
    now: datetime,
) -> datetime | None:
    data = {"approval_id": approval.id}
    if approval.kind == ApprovalKind.promotion:
        action = Action.approve if decision is Decision.approve else Action.reject
        if action is Action.approve:
            _adopt_reviewed_manifest(session, app, approval, actor=actor, policy=policy)
        catalog.apply_action(session, app, action, actor=actor, reason=reason, policy=policy, data=data)
        if action is Action.approve:
            # The approved app's service credential, sealed for its owner to claim.
            handover.on_app_approved(session, app, policy=policy, actor=actor)
        return None
    if decision is not Decision.approve:
        return None  # a refused extension changes nothing: the app expires as planned
    return extend_expiry(session, app, approval, actor=actor, policy=policy, now=now)


def _adopt_reviewed_manifest(
    session: Session, app: MicroApp, approval: ApprovalRequest, *, actor: str, policy: Policy
) -> None:
    """The manifest the approved review read becomes the catalog's (before the credential is handed over)."""
    review = session.get(Review, approval.review_id) if approval.review_id is not None else None
    if review is None or review.app_id != app.id or not review.manifest:
        return
    updates.adopt_approved(session, app, review.manifest, actor=actor, policy=policy, review_id=review.id)


def extend_expiry(
    session: Session, app: MicroApp, approval: ApprovalRequest, *, actor: str, policy: Policy, now: datetime
) -> datetime:
    """Push the app's expiry out by the approved days (capped by the policy); `decide` reschedules its timers."""
    rules = policy.for_class(app.data_class)
    days = min(int(approval.payload.get("days") or rules.max_extension_days), rules.max_extension_days)
    old = as_utc(app.expires_at) if app.expires_at else None
    new = max(old or now, now) + timedelta(days=days)
    if app.stage == Stage.expiring:
        catalog.apply_action(
            session, app, Action.extend, actor=actor, policy=policy, reason=f"extension of {days} days approved",
            data={"approval_id": approval.id},
        )  # fmt: skip
    app.expires_at = new
    app.version += 1
    app.updated_at = now
    session.add(app)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.app_expiry_extended,
        app_id=app.id,
        reason=f"{days} days",
        data={"approval_id": approval.id, "from": old.isoformat() if old else None, "to": new.isoformat()},
    )
    session.flush()
    return new


def _queue_messages(session: Session, approval: ApprovalRequest, app: MicroApp) -> None:
    """The Slack message shows the decision; the owner hears about it."""
    notify(
        session,
        to=approval.channel or "approvals",
        text="",
        kind=NotificationKind.approval_update,
        key=f"approval:{approval.id}:update",
        app_id=app.id,
        approval_id=approval.id,
    )
    dm = messages.decided_dm(
        approval=approval, app=app, app_url=app_url(app.id), decider=mention(session, approval.decided_by)
    )
    notify(
        session,
        to=app.owner_email,
        text=dm.text,
        blocks=dm.blocks,
        key=f"approval:{approval.id}:owner-dm",
        app_id=app.id,
        approval_id=approval.id,
    )


def cancel_pending(
    session: Session, app_id: str, *, reason: str, actor: str = "policy", kind: ApprovalKind = ApprovalKind.promotion
) -> list[int]:
    """Withdraw the app's pending request of `kind` (e.g. a newer review failed): its message loses its buttons."""
    return closing.cancel_open(session, app_id, reason=reason, actor=actor, kinds=[kind])
