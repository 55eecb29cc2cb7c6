"""Slack interactions: parse a verified payload, record it (API side), act on it (worker side).

The API only verifies, records the click as a `slack_interaction` row, commits and answers 200; the
row's id goes to the notifications queue after commit. The worker maps the clicker's Slack id to a
person, calls the decision service under the usual rules, and answers the clicker with an
ephemeral message when the click changed nothing ("already decided by @x", "not allowed: …").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from orchestrator.approvals import messages
from orchestrator.approvals.flows import request_approval
from orchestrator.approvals.messages import SlackAction
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.approvals.service import Decision, Outcome, Result, approvers_of, decide
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.errors import OrchestratorError, TransientIntegrationError
from orchestrator.logs import get_logger
from orchestrator.notifications.models import InteractionStatus, SlackInteraction
from orchestrator.notifications.service import INTERACTION_TASK, LEASE, Notifier, get_notifier
from orchestrator.tasks import send_after_commit

log = get_logger(__name__)

MODAL_ACTIONS = {SlackAction.reject: "reject", SlackAction.request_changes: "request_changes"}


@dataclass(frozen=True)
class Click:
    """What we keep of one interaction payload (never its response_url)."""

    type: str
    action: str
    user_id: str
    user_name: str = ""
    approval_id: int | None = None
    app_id: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    trigger_id: str | None = None
    reason: str | None = None

    @property
    def opens_modal(self) -> bool:
        """A Reject / Request changes button: the reason comes from a modal first."""
        return self.type == "block_actions" and self.action in MODAL_ACTIONS


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse(payload: dict[str, Any]) -> Click | None:
    """Our part of a payload, or None for anything we do not act on (link buttons, other callbacks)."""
    user = payload.get("user") or {}
    user_id = str(user.get("id") or "")
    if not user_id:
        return None
    name = str(user.get("username") or user.get("name") or "")
    if payload.get("type") == "block_actions":
        action = (payload.get("actions") or [{}])[0]
        action_id = str(action.get("action_id", ""))
        if action_id not in {a.value for a in SlackAction} or action_id == SlackAction.open_app:
            return None
        container = payload.get("container") or {}
        channel = (payload.get("channel") or {}).get("id") or container.get("channel_id")
        value = str(action.get("value") or "")
        return Click(
            type="block_actions",
            action=action_id,
            user_id=user_id,
            user_name=name,
            approval_id=None if action_id == SlackAction.extend else _int(value),
            app_id=value if action_id == SlackAction.extend else None,
            channel=channel,
            message_ts=container.get("message_ts") or (payload.get("message") or {}).get("ts"),
            trigger_id=payload.get("trigger_id"),
        )
    if payload.get("type") == "view_submission":
        view = payload.get("view") or {}
        if view.get("callback_id") != messages.REASON_CALLBACK_ID:
            return None
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            return None
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get(messages.REASON_BLOCK_ID) or {}).get(messages.REASON_ACTION_ID) or {}).get("value")
        decision = meta.get("decision")
        if decision not in MODAL_ACTIONS.values():
            return None
        return Click(
            type="view_submission",
            action=decision,
            user_id=user_id,
            user_name=name,
            approval_id=_int(meta.get("approval_id")),
            channel=meta.get("channel"),
            message_ts=meta.get("ts"),
            reason=(reason or "").strip(),
        )
    return None


def record(session: Session, click: Click, *, dedup_key: str, retry_num: int = 0, queue: bool = True) -> int | None:
    """Store a click for the worker (queued after commit unless `queue` is False); None when already seen."""
    if session.exec(select(SlackInteraction.id).where(SlackInteraction.dedup_key == dedup_key)).first():
        return None
    row = SlackInteraction(
        dedup_key=dedup_key,
        type=click.type,
        action=click.action,
        approval_id=click.approval_id,
        app_id=click.app_id,
        slack_user_id=click.user_id,
        slack_user_name=click.user_name[:200],
        channel=click.channel,
        message_ts=click.message_ts,
        reason=click.reason,
        retry_num=retry_num,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same request raced itself (a Slack retry during our first answer)
        return None
    assert row.id is not None
    if queue:
        send_after_commit(session, INTERACTION_TASK, row.id)
    return row.id


# ---------------------------------------------------------------- worker side


def person_for(session: Session, slack_user_id: str, candidates: set[str], notifier: Notifier) -> str | None:
    """The email of a Slack user: from the catalog, else by looking up the candidates' emails in Slack."""
    found = session.exec(select(Person.email).where(Person.slack_user_id == slack_user_id)).first()
    if found or not notifier.enabled:
        return found
    for email in sorted(candidates):
        person = session.get(Person, email)
        if person and person.slack_user_id:
            continue
        user_id = notifier.lookup_user(email=email)
        if user_id:
            person = catalog.ensure_person(session, email)
            person.slack_user_id = user_id
            session.add(person)
            if user_id == slack_user_id:
                return email
    return None


def _claim(interaction_id: int, now: datetime) -> SlackInteraction | None:
    with session_scope() as session:
        row = session.get(SlackInteraction, interaction_id)
        if row is None or row.status in (InteractionStatus.handled, InteractionStatus.failed):
            return None
        if row.status == InteractionStatus.handling and row.lease_until and row.lease_until > now:
            return None
        won = session.exec(
            update(SlackInteraction)
            .where(col(SlackInteraction.id) == row.id, col(SlackInteraction.attempts) == row.attempts)
            .values(status=InteractionStatus.handling, lease_until=now + LEASE, attempts=row.attempts + 1)
        ).rowcount
        return row if won else None


def _act(session: Session, row: SlackInteraction, notifier: Notifier) -> str:
    """Run the click through the services; returns the sentence for the clicker ('' for none)."""
    policy = get_policy()
    if row.action == SlackAction.extend:
        return _extend(session, row, notifier)
    approval = session.get(ApprovalRequest, row.approval_id) if row.approval_id else None
    app = session.get(MicroApp, approval.app_id) if approval else None
    if approval is None or app is None:
        return "This request no longer exists."
    actor = person_for(session, row.slack_user_id, approvers_of(policy, app), notifier)
    decision = Decision.approve if row.action == SlackAction.approve else Decision(row.action.split(".")[-1])
    outcome: Outcome = decide(
        session, approval.id or 0, decision=decision, actor=actor, via="slack", reason=row.reason or "",
        slack_user_id=row.slack_user_id, policy=policy,
    )  # fmt: skip
    row.outcome = outcome.result.value
    return "" if outcome.result is Result.decided else outcome.message


def _extend(session: Session, row: SlackInteraction, notifier: Notifier) -> str:
    app = session.get(MicroApp, row.app_id) if row.app_id else None
    if app is None:
        return "This app no longer exists."
    actor = person_for(session, row.slack_user_id, set(app.owners), notifier)
    if actor is None or actor not in app.owners:
        why = "only the app's owners can ask for an extension"
        audit.record(session, actor=actor or f"slack:{row.slack_user_id}", action=AuditAction.extension_refused,
                     app_id=app.id, reason=why, data={"via": "slack"})  # fmt: skip
        row.outcome = Result.not_allowed.value
        return f"Not allowed: {why}."
    request, emitted = catalog.request_extension(
        session, app, actor=actor, days=None, reason="Extend button on the expiry notice", policy=get_policy(),
        source="slack",
    )  # fmt: skip
    request_approval(session, request.id or 0)
    row.outcome = "extension_requested" if emitted else "extension_pending"
    if emitted is None:
        return f"An extension request for {app.name} is already waiting for a decision (#{request.id})."
    return f"Extension requested for {app.name} (#{request.id}); the approvers have been asked."


def handle(interaction_id: int, *, notifier: Notifier | None = None) -> str:
    """Act on one recorded interaction once; transient errors propagate so the task retries."""
    notifier = notifier or get_notifier()
    claimed = _claim(interaction_id, utcnow())
    if claimed is None:
        return "skipped"
    reply, outcome = "", "handled"
    try:
        with session_scope() as session:
            row = session.get(SlackInteraction, interaction_id)
            assert row is not None
            reply = _act(session, row, notifier)
            outcome = row.outcome or outcome
            row.status, row.handled_at, row.lease_until = InteractionStatus.handled, utcnow(), None
            session.add(row)
    except TransientIntegrationError:
        with session_scope() as session:  # let the retry claim it again at once
            session.execute(
                update(SlackInteraction).where(col(SlackInteraction.id) == interaction_id).values(lease_until=utcnow())
            )
        raise
    except OrchestratorError as exc:  # refused by the lifecycle, a missing reason, …: tell the clicker
        reply, outcome = f"Could not record that: {exc.message}", "error"
        with session_scope() as session:
            session.execute(
                update(SlackInteraction)
                .where(col(SlackInteraction.id) == interaction_id)
                .values(status=InteractionStatus.handled, outcome=outcome, handled_at=utcnow(), last_error=exc.message)
            )
    if reply and claimed.channel:
        try:
            notifier.ephemeral(channel=claimed.channel, user=claimed.slack_user_id, text=reply)
        except OrchestratorError as exc:  # the decision stands; only the courtesy message is lost
            log.warning("ephemeral reply failed", error=exc.message, interaction=interaction_id)
    log.info("slack interaction handled", interaction=interaction_id, action=claimed.action, outcome=outcome)
    return outcome
