"""Asking for a decision: post the approval message once, remind in its thread, escalate, and ask for extensions.

Entry points for the other features:

- `request_approval(session, approval_id)` — after `catalog.open_approval(...)`: queues the approval
  message for the data class's approver channel (posted once; its channel and ts are stored on
  the ApprovalRequest) and schedules two deadlines, `approval_reminder` and `approval_escalation`
  (ref = the approval id), due after the policy's `approval_reminder_hours` / `_escalation_hours`.
  Calling it again for the same request posts nothing new (one request, one message, per cycle);
  when the request now carries a newer review, the posted message is re-rendered to show it.
- `send_reminder(session, approval_id)` — a thread reply on that message, never a new request.
- `escalate(session, approval_id)` — the approval message (with buttons) to the escalation channel,
  a note in the original thread, and a DM to the requester's manager.
- `send_expiry_notice(session, app, days_left=…)` — the owner's DM with the "Extend" button.
- `reassign_from_leaver(session, email)` — on `owner.left` (after the catalog's handler marked the
  person gone): every pending request whose approver group names them is re-announced, in its
  thread, to the rest of the group, and its message re-rendered without them; once per request and
  person (`left_approvers` in the request's payload), with an `approval.reassigned` audit entry.

The deadlines fire as `approval.reminder_due` / `approval.escalation_due` events, handled below, as
is `extension.requested`. Every function writes in the caller's transaction; messages leave after
commit.
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from orchestrator.approvals import messages
from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.events.models import Event
from orchestrator.events.registry import PoisonEvent
from orchestrator.notifications.delivery import app_url, mention, remaining_approvers
from orchestrator.notifications.models import Notification, NotificationKind, NotificationStatus
from orchestrator.notifications.service import notify
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline, DeadlineKind


def _pending(session: Session, approval_id: int) -> tuple[ApprovalRequest, MicroApp] | None:
    approval = session.get(ApprovalRequest, approval_id)
    if approval is None or approval.status != ApprovalStatus.pending:
        return None
    app = session.get(MicroApp, approval.app_id)
    return (approval, app) if app is not None else None


def request_approval(session: Session, approval_id: int, *, policy: Policy | None = None) -> Notification | None:
    """Queue the approval message and schedule its reminder and escalation (idempotent)."""
    found = _pending(session, approval_id)
    if found is None:
        return None
    approval, app = found
    rules = (policy or get_policy()).for_class(app.data_class)
    have = set(
        session.exec(
            select(Deadline.kind).where(
                Deadline.ref == str(approval_id),
                col(Deadline.kind).in_([DeadlineKind.approval_reminder, DeadlineKind.approval_escalation]),
            )
        ).all()
    )
    opened = as_utc(approval.created_at)
    for kind, hours in (
        (DeadlineKind.approval_reminder, rules.approval_reminder_hours),
        (DeadlineKind.approval_escalation, rules.approval_escalation_hours),
    ):
        if kind not in have:
            deadlines.schedule(
                session,
                kind=kind,
                due_at=opened + timedelta(hours=hours),
                app_id=app.id,
                ref=str(approval_id),
                payload={"approval_id": approval_id},
            )
    post = notify(
        session,
        to=rules.approver_group.slack_channel,
        text="",
        kind=NotificationKind.approval_request,
        key=f"approval:{approval_id}:post",
        app_id=app.id,
        approval_id=approval_id,
    )
    if post.status != NotificationStatus.pending and approval.review_id is not None:
        # Asked again with a newer review: the posted message is re-rendered, never posted again.
        notify(
            session,
            to=post.recipient,
            text="",
            kind=NotificationKind.approval_update,
            key=f"approval:{approval_id}:review:{approval.review_id}",
            app_id=app.id,
            approval_id=approval_id,
        )
    return post


def _has_left(session: Session, email: str) -> bool:
    person = session.get(Person, email.lower())
    return person is not None and not person.active


def reassign_from_leaver(session: Session, email: str, *, actor: str = "policy") -> list[int]:
    """Re-announce every pending request `email` was asked to decide to the rest of their group.

    Nothing for someone who has not left (or is not catalogued). Idempotent: a request already
    re-announced for this person is skipped. Returns the ids of the requests re-announced now.
    """
    email = email.strip().lower()
    if not _has_left(session, email):
        return []
    policy = get_policy()
    done: list[int] = []
    pending = session.exec(
        select(ApprovalRequest)
        .where(ApprovalRequest.status == ApprovalStatus.pending)
        .order_by(col(ApprovalRequest.id))
    ).all()
    for approval in pending:
        app = session.get(MicroApp, approval.app_id)
        if app is None or approval.id is None:
            continue
        group = policy.for_class(app.data_class).approver_group
        if email not in {e.lower() for e in [*group.approvers, *group.escalation_approvers]}:
            continue
        left = [str(e) for e in approval.payload.get("left_approvers") or []]
        if email in left:
            continue
        approval.payload = {**approval.payload, "left_approvers": [*left, email]}
        session.add(approval)
        remaining = remaining_approvers(session, group.approvers) or remaining_approvers(
            session, group.escalation_approvers
        )
        rendered = messages.reassigned(approval=approval, app=app, approvers=[mention(session, e) for e in remaining])
        channel = approval.channel or group.slack_channel
        notify(
            session,
            to=channel,
            text=rendered.text,
            blocks=rendered.blocks,
            kind=NotificationKind.reminder,  # a thread reply on the request's message, like a reminder
            key=f"approval:{approval.id}:leaver:{email}",
            app_id=app.id,
            approval_id=approval.id,
            thread_ts=approval.message_ts,
        )
        notify(
            session,
            to=channel,
            text="",
            kind=NotificationKind.approval_update,  # the message re-rendered: the leaver no longer named
            key=f"approval:{approval.id}:leaver-update:{email}",
            app_id=app.id,
            approval_id=approval.id,
        )
        audit.record(
            session,
            actor=actor,
            action=AuditAction.approval_reassigned,
            app_id=app.id,
            reason=f"{email} left",
            data={"approval_id": approval.id, "left": email, "to": remaining},
        )
        done.append(approval.id)
    return done


def send_reminder(session: Session, approval_id: int, *, deadline_id: int | None = None) -> Notification | None:
    """A thread reply on the approval message asking its approvers again; nothing once decided."""
    found = _pending(session, approval_id)
    if found is None:
        return None
    approval, app = found
    group = get_policy().for_class(app.data_class).approver_group
    waited = (utcnow() - as_utc(approval.created_at)).total_seconds() / 3600
    # Someone who left (owner.left) is not asked again: the rest of the group is.
    who = [mention(session, e) for e in group.approvers if not _has_left(session, e)]
    rendered = messages.reminder(approval=approval, app=app, waiting_hours=waited, approvers=who)
    row = notify(
        session,
        to=approval.channel or group.slack_channel,
        text=rendered.text,
        blocks=rendered.blocks,
        kind=NotificationKind.reminder,
        key=f"approval:{approval_id}:reminder:{deadline_id if deadline_id is not None else 'manual'}",
        app_id=app.id,
        approval_id=approval_id,
        thread_ts=approval.message_ts,
    )
    audit.record(
        session, actor="policy", action=AuditAction.approval_reminded, app_id=app.id, data={"approval_id": approval_id}
    )
    return row


def escalate(session: Session, approval_id: int, *, deadline_id: int | None = None) -> list[Notification]:
    """Take a stale request to the escalation channel and the requester's manager; nothing once decided."""
    found = _pending(session, approval_id)
    if found is None:
        return []
    approval, app = found
    group = get_policy().for_class(app.data_class).approver_group
    rows: list[Notification] = []
    targets: list[str] = []
    if group.escalation_channel:
        targets.append(group.escalation_channel)
        rows.append(
            notify(
                session,
                to=group.escalation_channel,
                text="",
                kind=NotificationKind.approval_escalation,
                key=f"approval:{approval_id}:escalation",
                app_id=app.id,
                approval_id=approval_id,
            )
        )
    requester = session.get(Person, approval.requested_by.lower())
    if requester and requester.manager_email:
        targets.append(requester.manager_email)
        text = (
            f"Request #{approval_id} for {app.name}, asked by {approval.requested_by}, has no decision yet: "
            f"{app_url(app.id)}"
        )
        rows.append(notify(session, to=requester.manager_email, text=text, key=f"approval:{approval_id}:manager",
                           app_id=app.id, approval_id=approval_id))  # fmt: skip
    note = f"⚠️ Escalated to {', '.join(targets) or 'nobody (no escalation channel in the policy)'}."
    rows.append(
        notify(
            session,
            to=approval.channel or group.slack_channel,
            text=note,
            kind=NotificationKind.reminder,
            key=f"approval:{approval_id}:escalation-note",
            app_id=app.id,
            approval_id=approval_id,
            thread_ts=approval.message_ts,
        )
    )
    audit.record(
        session,
        actor="policy",
        action=AuditAction.approval_escalated,
        app_id=app.id,
        data={"approval_id": approval_id, "to": targets, "deadline_id": deadline_id},
    )
    return rows


def send_expiry_notice(session: Session, app: MicroApp, *, days_left: int, key: str | None = None) -> Notification:
    """The owner's expiry notice with an "Extend" button (one per app, expiry and notice day)."""
    rendered = messages.expiry_notice(app=app, app_url=app_url(app.id), days_left=days_left)
    expiry = as_utc(app.expires_at).date().isoformat() if app.expires_at else "none"
    return notify(
        session,
        to=app.owner_email,
        text=rendered.text,
        blocks=rendered.blocks,
        kind=NotificationKind.expiry_notice,
        key=key or f"expiry:{app.id}:{expiry}:{days_left}",
        app_id=app.id,
    )


# ---------------------------------------------------------------- event handlers


def _approval_id(event: Event) -> int:
    return int(event.payload.get("approval_id") or event.payload["ref"])


def on_owner_left(session: Session, event: Event) -> None:
    """Someone left: the requests they were asked to decide go to the rest of their group."""
    email = str(event.payload.get("email") or "")
    if email:
        reassign_from_leaver(session, email, actor=str(event.payload.get("actor") or event.source))


def on_extension_requested(session: Session, event: Event) -> None:
    """Post the approval message of a new extension request."""
    request_approval(session, _approval_id(event))


def on_decided(session: Session, event: Event) -> None:
    """Nothing left to do: the decision moved the app, its timers and messages in its own transaction.

    The event is the decision's public record for other consumers; this handler only refuses one
    that names no decided request, so every decision ends handled rather than parked.
    """
    approval = session.get(ApprovalRequest, _approval_id(event))
    if approval is None or approval.status == ApprovalStatus.pending:
        raise PoisonEvent(f"approval.decided for a request that is not decided: {event.payload.get('approval_id')}")


def on_reminder_due(session: Session, event: Event) -> None:
    """The reminder deadline fired: nudge the approvers in the thread."""
    send_reminder(session, _approval_id(event), deadline_id=event.payload.get("deadline_id"))


def on_escalation_due(session: Session, event: Event) -> None:
    """The escalation deadline fired: take the request higher."""
    escalate(session, _approval_id(event), deadline_id=event.payload.get("deadline_id"))
