"""Delivering one notification row: claim it, render it, post it at most once, record the outcome.

Three short transactions, never one held open across a network call:
1. claim — compare-and-set to `sending` under a lease (or hold it for a digest): 5 minutes for a
   post, 15 s for an approval update (`lease_for`), whose claim by another while the lease holds
   raises `Leased` so the task comes back when it lapses (its holder may have been killed);
2. post — outside any transaction; a repeat attempt looks for the row's key in Slack first;
3. record — `sent` with channel and ts (and the ApprovalRequest's channel/ts for its message).

Approval messages are rendered at claim time from the database, so a message posted after its
request was decided already shows the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from sqlalchemy import update
from sqlmodel import Session, col, select

from orchestrator.approvals import messages
from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.catalog.service import ensure_person
from orchestrator.clock import utcnow
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.errors import IntegrationError, TransientIntegrationError
from orchestrator.logs import get_logger
from orchestrator.notifications.models import Notification, NotificationKind, NotificationStatus
from orchestrator.notifications.service import (
    LEASE,
    Leased,
    Notifier,
    get_notifier,
    hold_for_digest,
    lease_for,
    over_threshold,
)

log = get_logger(__name__)

DONE = {NotificationStatus.sent, NotificationStatus.digested, NotificationStatus.logged, NotificationStatus.skipped}
APPROVAL_POSTS = (NotificationKind.approval_request, NotificationKind.approval_escalation)


@dataclass
class Job:
    """What the claim decided to send."""

    row_id: int
    kind: NotificationKind
    key: str
    target: str  # channel (#name or id) or a Slack user id
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    created_at: datetime
    repeat: bool  # an earlier attempt may have posted: look before posting
    updates: list[tuple[str, str]]  # approval_update: (channel_id, ts) of each message to edit
    digest_items: list[int]


def app_url(app_id: str) -> str:
    """The app's page in the web console (what Slack's "Open app page" and every notification link to)."""
    return f"{get_settings().public_url.rstrip('/')}/console/apps/{quote(app_id, safe='')}"


def mention(session: Session, email: str | None) -> str:
    """`<@U…>` for someone with a known Slack id, else their email."""
    if not email:
        return "someone"
    person = session.get(Person, email.lower())
    return f"<@{person.slack_user_id}>" if person and person.slack_user_id else email


def remaining_approvers(session: Session, emails: list[str]) -> list[str]:
    """The emails of `emails` who have not left (owner.left marks a catalogued person inactive)."""
    out = []
    for email in emails:
        person = session.get(Person, email.lower())
        if person is None or person.active:
            out.append(email)
    return out


def render_approval(session: Session, approval: ApprovalRequest, *, escalated: bool = False) -> messages.Rendered:
    """The approval message in its current state (naming the approvers who have not left)."""
    app = session.get(MicroApp, approval.app_id)
    assert app is not None
    decider = mention(session, approval.decided_by) if approval.decided_by else None
    group = get_policy().for_class(app.data_class).approver_group
    approvers = [mention(session, e) for e in remaining_approvers(session, group.approvers)]
    return messages.approval_message(
        approval=approval, app=app, app_url=app_url(app.id), decider=decider, escalated=escalated,
        approvers=approvers,
    )  # fmt: skip


def _slack_user(session: Session, email: str, notifier: Notifier) -> str | None:
    person = session.get(Person, email)
    if person and person.slack_user_id:
        return person.slack_user_id
    if not notifier.enabled:
        return None
    user_id = notifier.lookup_user(email=email)
    if user_id:
        person = ensure_person(session, email)
        person.slack_user_id = user_id
        session.add(person)
    return user_id


class NotReady(TransientIntegrationError):
    """The message this one depends on (the approval post) is not posted yet."""


def _claim(session: Session, row: Notification, notifier: Notifier, now: datetime) -> Job | str:
    """Move the row to `sending` and build its job, or say why there is nothing to do."""
    if row.status in DONE or row.status in (NotificationStatus.failed, NotificationStatus.held):
        return str(row.status)
    if row.status == NotificationStatus.sending and row.lease_until and row.lease_until > now:
        if lease_for(row.kind) < LEASE:  # its holder may have died: come back when the short lease lapses
            raise Leased(f"notification {row.id}", row.lease_until, now)
        return "busy"
    if row.kind == NotificationKind.digest and row.due_at and row.due_at > now:
        return "not_due"
    policy = get_policy()
    to_person = row.recipient_type == "user"
    if to_person and row.kind != NotificationKind.digest and row.status == NotificationStatus.pending:
        if over_threshold(session, row, policy, now) and hold_for_digest(session, row, policy, now):
            return "held"
    job = Job(row.id or 0, row.kind, row.key, row.recipient, row.text, list(row.blocks), row.thread_ts,
              row.created_at, repeat=row.attempts > 0, updates=[], digest_items=[])  # fmt: skip
    finished = _render(session, row, job, notifier, policy)
    if finished:
        return finished
    if to_person:
        user_id = _slack_user(session, row.recipient, notifier)
        if notifier.enabled and not user_id:
            _finish(session, row, NotificationStatus.failed, error=f"no Slack user has the email {row.recipient}")
            return "failed"
        job.target = user_id or row.recipient
    won = session.exec(
        update(Notification)
        .where(
            col(Notification.id) == row.id,
            col(Notification.status) == row.status,
            col(Notification.attempts) == row.attempts,
        )
        .values(status=NotificationStatus.sending, lease_until=now + lease_for(row.kind), attempts=row.attempts + 1)
    ).rowcount
    if not won:
        return "busy"
    if job.digest_items:
        session.execute(
            update(Notification)
            .where(col(Notification.id).in_(job.digest_items))
            .values(status=NotificationStatus.digested, sent_at=now)
        )
    return job


def _render(session: Session, row: Notification, job: Job, notifier: Notifier, policy: Policy) -> str | None:
    """Fill in what is built at send time; an outcome when the row is settled without sending."""
    if row.kind in APPROVAL_POSTS or row.kind == NotificationKind.approval_update:
        approval = session.get(ApprovalRequest, row.approval_id)
        assert approval is not None
        rendered = render_approval(session, approval, escalated=row.kind == NotificationKind.approval_escalation)
        job.text, job.blocks = rendered.text, rendered.blocks
        if row.kind == NotificationKind.approval_update:
            return _updates(session, row, job, notifier)
    elif row.kind == NotificationKind.reminder and not row.thread_ts and notifier.enabled:
        approval = session.get(ApprovalRequest, row.approval_id)
        if approval is None or not approval.message_ts:
            raise NotReady("the approval message has no ts yet; the reminder goes in its thread")
        job.target, job.thread_ts = approval.channel or row.recipient, approval.message_ts
    elif row.kind == NotificationKind.digest:
        items = session.exec(
            select(Notification)
            .where(
                # `digested` too: a retried digest must list what its first attempt took
                col(Notification.digest_id) == row.id,
                col(Notification.status).in_([NotificationStatus.held, NotificationStatus.digested]),
            )
            .order_by(col(Notification.id))
        ).all()
        job.digest_items = [i.id for i in items if i.id is not None]
        window = policy.notifications.digest_window_minutes
        rendered = messages.digest(lines=[i.text for i in items], window_minutes=window)
        job.text, job.blocks = rendered.text, rendered.blocks
    return None


def _updates(session: Session, row: Notification, job: Job, notifier: Notifier) -> str | None:
    """Which posted messages of the request a decision update edits (posts still pending render it anyway)."""
    posts = session.exec(
        select(Notification).where(
            col(Notification.approval_id) == row.approval_id, col(Notification.kind).in_(list(APPROVAL_POSTS))
        )
    ).all()
    if any(p.status == NotificationStatus.sending for p in posts):
        raise NotReady("the approval message is being posted; update it afterwards")
    job.updates = [(p.channel_id or "", p.ts) for p in posts if p.status == NotificationStatus.sent and p.ts]
    if notifier.enabled and not job.updates:
        _finish(session, row, NotificationStatus.skipped, error="no posted message to update")
        return "skipped"
    return None


def _finish(session: Session, row: Notification, status: NotificationStatus, *, error: str | None = None,
            posted: Any = None) -> None:  # fmt: skip
    values: dict[str, Any] = {"status": status, "lease_until": None, "last_error": error}
    if status in (NotificationStatus.sent, NotificationStatus.logged):
        values["sent_at"] = utcnow()
    if posted is not None:
        values.update(channel_id=posted.channel_id or None, ts=posted.ts or None)
    session.execute(update(Notification).where(col(Notification.id) == row.id).values(**values))


def _send(job: Job, notifier: Notifier) -> Any:
    if job.kind == NotificationKind.approval_update:
        if not notifier.enabled:
            notifier.update(channel_id=job.target, ts="", text=job.text, blocks=job.blocks)
        for channel_id, ts in job.updates:
            notifier.update(channel_id=channel_id, ts=ts, text=job.text, blocks=job.blocks)
        return None
    return notifier.post(
        channel=job.target,
        text=job.text,
        blocks=job.blocks,
        key=job.key,
        thread_ts=job.thread_ts,
        check_first=job.repeat,
        since=job.created_at,
    )


def _refresh_if_decided_meanwhile(session: Session, row: Notification, job: Job) -> None:
    # The request was rendered with buttons while pending; a decision committed between that render
    # and now found no message to update, so update the one just posted.
    approval = session.get(ApprovalRequest, row.approval_id)
    rendered_pending = any(block.get("type") == "actions" for block in job.blocks)
    if approval is not None and rendered_pending and approval.status != ApprovalStatus.pending:
        from orchestrator.notifications.service import notify

        notify(
            session,
            to=approval.channel or row.recipient,
            text="",
            kind=NotificationKind.approval_update,
            key=f"approval:{approval.id}:update-after-post",
            app_id=row.app_id,
            approval_id=approval.id,
        )


def deliver(notification_id: int, *, notifier: Notifier | None = None, now: datetime | None = None) -> str:
    """Deliver one notification; returns its outcome. Transient errors propagate for a retry."""
    notifier = notifier or get_notifier()
    now = now or utcnow()
    with session_scope() as session:
        row = session.get(Notification, notification_id)
        if row is None:
            return "missing"
        claimed = _claim(session, row, notifier, now)
    if isinstance(claimed, str):
        return claimed
    job = claimed
    try:
        posted = _send(job, notifier)
    except TransientIntegrationError as exc:
        with session_scope() as session:
            session.execute(
                update(Notification)
                .where(col(Notification.id) == job.row_id)
                .values(lease_until=utcnow(), last_error=str(exc)[:2000])
            )
        raise
    except IntegrationError as exc:
        log.error("notification failed; operator action needed", key=job.key, target=job.target, error=exc.message)
        with session_scope() as session:
            row = session.get(Notification, job.row_id)
            assert row is not None
            _finish(session, row, NotificationStatus.failed, error=exc.message)
        return "failed"
    status = NotificationStatus.sent if notifier.enabled else NotificationStatus.logged
    with session_scope() as session:
        row = session.get(Notification, job.row_id)
        assert row is not None
        _finish(session, row, status, posted=posted)
        if posted is not None and job.kind in APPROVAL_POSTS:
            if job.kind == NotificationKind.approval_request and notifier.enabled:
                session.execute(
                    update(ApprovalRequest)
                    .where(col(ApprovalRequest.id) == row.approval_id)
                    .values(channel=posted.channel_id, message_ts=posted.ts)
                )
                _refresh_if_decided_meanwhile(session, row, job)
            audit.record(
                session,
                actor="slack" if notifier.enabled else "log",
                action=AuditAction.approval_message_posted,
                app_id=row.app_id,
                data={"approval_id": row.approval_id, "kind": str(job.kind), "channel": posted.channel_id,
                      "ts": posted.ts or None, "found_existing": posted.found},
            )  # fmt: skip
    log.info("notification delivered", key=job.key, kind=str(job.kind), status=str(status))
    return str(status)
