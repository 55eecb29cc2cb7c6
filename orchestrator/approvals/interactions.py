"""Slack interactions: parse a verified payload, record it (API side), act on it (worker side).

The API only verifies, records the click as a `slack_interaction` row, commits and answers 200; the
row's id goes to the notifications queue after commit. The worker maps the clicker's Slack id to a
person, calls the decision service under the usual rules, and answers the clicker with an
ephemeral message when the click changed nothing ("already decided by @x", "not allowed: …").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
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
from orchestrator.documents import control_character, load_json
from orchestrator.errors import MalformedPayload, OrchestratorError, TransientIntegrationError
from orchestrator.logs import get_logger
from orchestrator.notifications.models import InteractionStatus, SlackInteraction
from orchestrator.notifications.service import INTERACTION_TASK, SHORT_LEASE, Leased, Notifier, get_notifier
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


# The largest id a BIGINT column holds: a bigger approval id in a payload is a shape error, not an overflow.
_MAX_ROW_ID = 2**63 - 1


def _plain(value: str) -> str:
    if control_character(value):
        raise ValueError("must not contain control characters")
    return value


def _free_text(value: str) -> str:
    if control_character(value, free_text=True):
        raise ValueError("must not contain control characters other than tabs and line breaks")
    return value


Plain = Annotated[str, AfterValidator(_plain)]
FreeText = Annotated[str, AfterValidator(_free_text)]


class _Part(BaseModel):
    """A piece of a Slack payload: unknown keys are Slack's business and ignored; known ones must have our types."""

    model_config = ConfigDict(extra="ignore")


class SlackUser(_Part):
    """The clicker."""

    id: Plain = Field(min_length=1, max_length=100)
    username: FreeText = Field(default="", max_length=500)
    name: FreeText = Field(default="", max_length=500)


class ActionPart(_Part):
    """One element of `actions`."""

    action_id: Plain = Field(default="", max_length=255)
    value: FreeText | None = Field(default=None, max_length=2000)


class ContainerPart(_Part):
    """Where the clicked message lives."""

    channel_id: Plain | None = Field(default=None, max_length=100)
    message_ts: Plain | None = Field(default=None, max_length=100)


class ChannelPart(_Part):
    """The channel of the clicked message."""

    id: Plain | None = Field(default=None, max_length=100)


class MessagePart(_Part):
    """The clicked message."""

    ts: Plain | None = Field(default=None, max_length=100)


class BlockActions(_Part):
    """A `block_actions` payload: a button was clicked."""

    type: Literal["block_actions"]
    user: SlackUser
    actions: list[ActionPart] = Field(default_factory=list)
    container: ContainerPart = Field(default_factory=ContainerPart)
    channel: ChannelPart | None = None
    message: MessagePart | None = None
    trigger_id: Plain | None = Field(default=None, max_length=500)


class ViewPart(_Part):
    """The submitted modal; `state` is read only for our reason block."""

    callback_id: Plain = Field(default="", max_length=255)
    private_metadata: FreeText = Field(default="", max_length=3000)
    state: dict[str, Any] = Field(default_factory=dict)


class ViewSubmission(_Part):
    """A `view_submission` payload: a modal was submitted."""

    type: Literal["view_submission"]
    user: SlackUser
    view: ViewPart


class ReasonMeta(_Part):
    """What our reason modal carries in `private_metadata` (written by us, but it comes back through Slack)."""

    approval_id: int | None = Field(default=None, ge=1, le=_MAX_ROW_ID)
    decision: Plain = ""
    channel: Plain | None = None
    ts: Plain | None = None


class _Reason(_Part):
    value: FreeText | None = Field(default=None, max_length=2000)


def _shape_error(exc: ValidationError) -> MalformedPayload:
    fields = sorted({".".join(str(p) for p in err["loc"]) or "(payload)" for err in exc.errors()})
    # Where, never the value: a payload may carry a user's text or a response_url.
    detail = [{"field": f"payload.{f}", "in": "body", "reason": "unexpected type or value"} for f in fields[:10]]
    return MalformedPayload(f"the Slack payload is not of the expected shape ({', '.join(fields[:10])})", detail=detail)


def _approval_id(value: str | None) -> int | None:
    if not value or not (value.isascii() and value.isdigit()) or int(value) > _MAX_ROW_ID:
        return None
    return int(value)


def parse(payload: Any) -> Click | None:
    """Our part of a payload, or None for anything we do not act on (link buttons, other callbacks).

    MalformedPayload when a payload of a type we handle (or one without a type) is not the shape
    Slack documents for it: the endpoint answers 400 rather than fail on it later.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise MalformedPayload(
            "the Slack payload has no type", detail=[{"field": "payload.type", "in": "body", "reason": "required"}]
        )
    try:
        if payload["type"] == "block_actions":
            return _block_actions(BlockActions.model_validate(payload))
        if payload["type"] == "view_submission":
            return _view_submission(ViewSubmission.model_validate(payload))
    except ValidationError as exc:
        raise _shape_error(exc) from None
    return None


def _block_actions(payload: BlockActions) -> Click | None:
    action = payload.actions[0] if payload.actions else ActionPart()
    action_id = action.action_id
    if action_id not in {a.value for a in SlackAction} or action_id == SlackAction.open_app:
        return None
    channel = (payload.channel.id if payload.channel else None) or payload.container.channel_id
    value = action.value or ""
    return Click(
        type="block_actions",
        action=action_id,
        user_id=payload.user.id,
        user_name=payload.user.username or payload.user.name,
        approval_id=None if action_id == SlackAction.extend else _approval_id(value),
        app_id=value if action_id == SlackAction.extend else None,
        channel=channel,
        message_ts=payload.container.message_ts or (payload.message.ts if payload.message else None),
        trigger_id=payload.trigger_id,
    )


def _view_submission(payload: ViewSubmission) -> Click | None:
    view = payload.view
    if view.callback_id != messages.REASON_CALLBACK_ID:
        return None
    try:
        meta = ReasonMeta.model_validate(load_json(view.private_metadata or "{}"))
    except ValueError:  # not JSON, too deep, or (ValidationError) not our metadata's shape
        return None
    block = view.state.get("values", {}).get(messages.REASON_BLOCK_ID) if isinstance(view.state, dict) else None
    element = block.get(messages.REASON_ACTION_ID) if isinstance(block, dict) else None
    reason = _Reason.model_validate(element if isinstance(element, dict) else {}).value
    if meta.decision not in MODAL_ACTIONS.values():
        return None
    return Click(
        type="view_submission",
        action=meta.decision,
        user_id=payload.user.id,
        user_name=payload.user.username or payload.user.name,
        approval_id=meta.approval_id,
        channel=meta.channel,
        message_ts=meta.ts,
        reason=(reason or "").strip(),
    )


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
            # Its handler may have died (a killed worker, a broker connection lost mid-task): come back
            # when the short lease lapses rather than drop this (maybe redelivered) message.
            raise Leased(f"slack interaction {row.id}", row.lease_until, now)
        attempt = row.attempts + 1
        won = session.exec(
            update(SlackInteraction)
            .where(
                col(SlackInteraction.id) == row.id,
                col(SlackInteraction.attempts) == row.attempts,
                col(SlackInteraction.status) == row.status,  # not one a slow holder finished meanwhile
            )
            .values(status=InteractionStatus.handling, lease_until=now + SHORT_LEASE, attempts=attempt)
        ).rowcount
        if not won:
            return None
        session.expunge(row)  # a detached copy that carries the claim's own attempt number
        row.attempts = attempt  # (the UPDATE may or may not have synchronised it); handle() checks it
        return row


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
            # Locked for the whole act: a second claimant after a lapsed short lease waits, then finds it done.
            row = session.get(SlackInteraction, interaction_id, with_for_update=True)
            assert row is not None
            if row.attempts != claimed.attempts or row.status != InteractionStatus.handling:
                log.info("slack interaction taken over by another attempt", interaction_id=interaction_id)
                return "skipped"
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
