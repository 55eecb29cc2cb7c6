"""When an owner leaves: promote a co-owner, or orphan the app and ask for a new owner.

`owner.left` comes from `POST /api/v1/people/{id}/left` (HR/IdP), Slack `user_change` with
`deleted: true`, or GitHub `organization.member_removed` — often all three for one departure, so
handling is idempotent: the second run finds the person inactive and the apps already moved.

For every live app the person owns:
- with an active co-owner: that co-owner becomes the owner (audited) and is told;
- otherwise: the app becomes `orphaned`, an `owner_left_grace` deadline is recorded (policy
  `owner_left_grace_days` of the app's data class) and the hand-over chain starts: the person's
  active manager is asked for a new owner with a deadline (`owner_manager_days`, an
  `owner_handover_escalation` deadline); when it passes with the app still orphaned, IT's group
  (the data class's approver group) is asked; without a manager IT's group is asked at once. When
  the grace period ends the app is suspended (timers.handlers.on_owner_grace_over). Every ask is
  an `owner.handover_asked` audit entry naming its step.
Apps the person only co-owns lose them from their co-owner list. `POST /api/v1/apps/{id}/owner`
(catalog.transfer_owner) reassigns an orphaned app and returns it to its stage.

The person's access ends with the same transaction: their API tokens are revoked, and so is every
token the token service issued to them (ledger rows whose subject is their email) — those would
otherwise introspect active until they expire. A revocation the revocation list cannot take yet
(Redis down) fails the event, which is retried; the steps before it are idempotent.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, POLICY_ACTOR, Action, Stage
from orchestrator.catalog.models import AppOwner, MicroApp, Person
from orchestrator.catalog.policy import Policy, get_policy, whole
from orchestrator.clock import utcnow
from orchestrator.events.models import Event
from orchestrator.events.registry import PoisonEvent
from orchestrator.logs import get_logger
from orchestrator.notifications.service import Message, notify_many
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import DeadlineKind

log = get_logger(__name__)

GRACE_KIND = DeadlineKind.owner_left_grace
ESCALATION_KIND = DeadlineKind.owner_handover_escalation
_ORPHANABLE = ACTIVE_STAGES | {Stage.expiring}
_GONE = (Stage.sunsetting, Stage.retired)


def tell(
    session: Session, *, to: str, text: str, app_id: str | None, key: str, batch: list[Message] | None = None
) -> None:
    """Queue a message (Slack DM or channel, or the log without Slack) once per `key`; with `batch`,
    add it there for the caller to write with the others in one statement (`notify_many`)."""
    from orchestrator.notifications.service import notify

    if batch is not None:
        batch.append(Message(to=to, text=text, app_id=app_id, key=key))
        return
    notify(session, to=to, text=text, app_id=app_id, key=key)


def handle_owner_left(session: Session, event: Event) -> None:
    """Deactivate the person and move each of their apps to a co-owner or to `orphaned`."""
    email = str(event.payload.get("email") or "").strip().lower()
    if not email:
        raise PoisonEvent("owner.left without an email")
    person = session.get(Person, email)
    if person is None:
        event.last_error = f"{email} is not a known person; nothing to do"
        return
    actor = str(event.payload.get("actor") or event.source)
    reason = str(event.payload.get("reason") or f"{email} left ({event.source})")
    now = utcnow()
    if person.active:
        person.active = False
        person.left_at = now
        session.add(person)
        session.flush()
        audit.record(session, actor=actor, action=AuditAction.person_left, reason=reason, data={"email": email})
    policy = get_policy()
    # Held until the end: the session's identity map keeps only weak references.
    people = _load_people(session, email, person)
    owned = session.exec(
        select(MicroApp)
        .where(MicroApp.owner_email == email, col(MicroApp.stage).not_in(_GONE))
        .order_by(col(MicroApp.id))
    ).all()
    # Each app's pending timers and approval requests, read once for all of them (not per app and step).
    # The messages are written together at the end: one statement, not one per app.
    messages: list[Message] = []
    with deadlines.preloaded(session, [app.id for app in owned]):
        for app in owned:
            _reassign_or_orphan(session, event, app, person, policy, actor=actor, batch=messages)
    notify_many(session, messages)
    _drop_from_co_owners(session, email, actor=actor, reason=reason)
    _revoke_access(session, email, actor=actor, reason=reason)
    del people


def _load_people(session: Session, email: str, person: Person) -> list[Person]:
    # Everyone the hand-over may ask about (co-owners of the leaver's apps, the manager), in one
    # query: the per-app steps then find them in the session (catalog.people_of) without a statement.
    co_owners = select(AppOwner.email).where(
        col(AppOwner.app_id).in_(select(AppOwner.app_id).where(col(AppOwner.email) == email))
    )
    emails = [e for e in [person.manager_email] if e]
    return list(
        session.exec(select(Person).where(or_(col(Person.email).in_(co_owners), col(Person.email).in_(emails)))).all()
    )


def _revoke_access(session: Session, email: str, *, actor: str, reason: str) -> None:
    # Imported here: the credential ledger imports the catalog's models.
    from orchestrator.auth import changes
    from orchestrator.auth.service import revoke_tokens_of
    from orchestrator.credentials import service as ledger
    from orchestrator.credentials.tokens.builtin import BUILTIN

    revoke_tokens_of(session, email, actor=actor, reason=reason)
    # Caches of authenticated callers drop the person's tokens even when none was live to revoke.
    changes.announce(session)
    for credential_id in ledger.live_issued_to(session, email, provider=BUILTIN):
        ledger.revoke_credential(session, credential_id, actor=actor, reason=reason)


def _successor(session: Session, app: MicroApp) -> str | None:
    if not app.co_owners:
        return None
    active = {p.email for p in catalog.people_of(session, app.co_owners) if p.active}
    return next((c for c in app.co_owners if c in active), None)


def _reassign_or_orphan(
    session: Session,
    event: Event,
    app: MicroApp,
    person: Person,
    policy: Policy,
    *,
    actor: str,
    batch: list[Message],
) -> None:
    successor = _successor(session, app)
    if successor is not None:
        catalog.transfer_owner(
            session,
            app,
            successor,
            actor=actor,
            reason=f"{person.email} left; co-owner promoted",
            policy=policy,
            flush=False,  # written with the other apps' at the next flush
        )
        tell(
            session,
            to=successor,
            text=f"{person.email} has left, so you are now the owner of {app.name} ({app.id}).",
            app_id=app.id,
            key=f"owner-left:{event.id}:{app.id}:promoted",
            batch=batch,
        )
        return
    if app.stage not in _ORPHANABLE:
        return  # already orphaned or suspended: the grace period is running
    grace_days = whole(policy.for_class(app.data_class).owner_left_grace_days)
    due = utcnow() + timedelta(days=grace_days)
    catalog.apply_action(
        session,
        app,
        Action.orphan,
        actor=actor,
        reason=f"owner {person.email} left and no active co-owner remains",
        policy=policy,
        data={"left": person.email, "grace_until": due.isoformat()},
        flush=False,
    )
    deadlines.replace(
        session,
        kind=GRACE_KIND,
        due_at=due,
        app_id=app.id,
        ref=person.email,
        payload={"left": person.email},
        flush=False,  # written with the other apps' at the next flush
    )
    _ask_for_owner(session, event, app, person, policy, grace_days, batch)


def _ask_for_owner(
    session: Session,
    event: Event,
    app: MicroApp,
    person: Person,
    policy: Policy,
    grace_days: float,
    batch: list[Message],
) -> None:
    manager = session.get(Person, person.manager_email.lower()) if person.manager_email else None
    if manager is None or not manager.active:
        _ask(session, app, policy, step="it_group", left=person.email, grace_days=grace_days, key=f"{event.id}",
             batch=batch)  # fmt: skip
        return
    rules = policy.for_class(app.data_class)
    manager_days = rules.owner_manager_days or grace_days / 3
    manager_days = min(manager_days, grace_days)
    _ask(
        session,
        app,
        policy,
        step="manager",
        left=person.email,
        grace_days=grace_days,
        key=f"{event.id}",
        to=manager.email,
        within_days=manager_days,
        batch=batch,
    )
    deadlines.replace(
        session,
        kind=ESCALATION_KIND,
        due_at=utcnow() + timedelta(days=manager_days),
        app_id=app.id,
        ref=person.email,
        payload={"left": person.email, "manager": manager.email},
        flush=False,
    )


def _ask(
    session: Session,
    app: MicroApp,
    policy: Policy,
    *,
    step: str,
    left: str,
    grace_days: float,
    key: str,
    to: str | None = None,
    within_days: float | None = None,
    batch: list[Message] | None = None,
) -> None:
    """One step of the hand-over chain: ask `to` (the manager) or IT's group for a new owner; audited."""
    channel = to or policy.for_class(app.data_class).approver_group.slack_channel
    within = within_days if within_days is not None else grace_days
    text = (
        f"{left} has left and {app.name} ({app.id}, {app.data_class.value}) has no owner. "
        f"Please name a new owner within {within:g} days (POST /api/v1/apps/{app.id}/owner); "
        + (
            "after that IT's group is asked, then the app is suspended and its credentials revoked."
            if step == "manager"
            else "after the grace period the app is suspended and its credentials revoked."
        )
    )
    tell(session, to=channel, text=text, app_id=app.id, key=f"owner-left:{key}:{app.id}:ask:{step}", batch=batch)
    audit.record(
        session,
        actor=POLICY_ACTOR,
        action=AuditAction.owner_handover_asked,
        app_id=app.id,
        reason=f"asked {channel} for a new owner ({step})",
        data={"step": step, "asked": channel, "left": left, "within_days": within},
    )


def on_handover_escalation(session: Session, event: Event) -> None:
    """The manager did not name a new owner in time: IT's group (the approver group) is asked."""
    app = session.get(MicroApp, event.app_id) if event.app_id else None
    if app is None or app.stage is not Stage.orphaned:
        return  # re-owned (or on its way out) since the manager was asked
    policy = get_policy()
    left = str(event.payload.get("left") or "")
    grace_days = whole(policy.for_class(app.data_class).owner_left_grace_days)
    _ask(session, app, policy, step="it_group", left=left, grace_days=grace_days, key=event.id)


def _drop_from_co_owners(session: Session, email: str, *, actor: str, reason: str) -> None:
    listed = col(MicroApp.id).in_(
        select(AppOwner.app_id).where(col(AppOwner.email) == email.lower(), col(AppOwner.co_owner))
    )
    candidates = session.exec(
        select(MicroApp).where(listed, MicroApp.owner_email != email, col(MicroApp.stage).not_in(_GONE))
    ).all()
    for app in candidates:
        if email not in app.co_owners:
            continue
        app.co_owners = [c for c in app.co_owners if c != email]
        app.version += 1
        app.updated_at = utcnow()
        session.add(app)
        audit.record(
            session,
            actor=actor,
            action=AuditAction.app_co_owner_removed,
            app_id=app.id,
            reason=reason,
            data={"email": email},
        )
