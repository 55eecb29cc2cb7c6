"""Provisioning changes from the identity provider, and the `owner.left` they raise.

The IdP is the first to know that someone left. A user going from active to inactive (a SCIM PATCH
or PUT with `active: false`, a DELETE, an Okta event hook, a reconciliation) emits `owner.left`
through the outbox — the same event path as `POST /api/v1/people/{email}/left` — with a dedup key
per deactivation, so an IdP's retries (they all retry) find the first event. A reactivation is
audited and ends nothing: the hand-over that started goes on, an admin decides the rest.

Provisioning also keeps the catalog's people current: a provisioned user is a `person` (created
when first seen) whose manager is the enterprise extension's manager, once that manager is known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import Person
from orchestrator.catalog.service import ensure_person
from orchestrator.clock import utcnow
from orchestrator.events.outbox import Emitted, emit
from orchestrator.events.types import EventType
from orchestrator.identity import scim
from orchestrator.identity.models import IdpUser
from orchestrator.identity.scim import ScimRefused, ScimUser
from orchestrator.logs import get_logger

log = get_logger(__name__)

# `attribute eq "value"`: what Okta and Entra filter on before creating a user.
_FILTER = re.compile(
    r'^\s*(?P<attr>[A-Za-z.\[\]" ]+?)\s+eq\s+"(?P<value>(?:[^"\\]|\\.)*)"\s*$',
    re.IGNORECASE,
)
_FILTERABLE = {
    "username": "user_name",
    "externalid": "external_id",
    "id": "id",
    "emails.value": "email",
    'emails[type eq "work"].value': "email",
    "emails": "email",
}


@dataclass(frozen=True)
class Page:
    """One page of users and the total matching the filter."""

    total: int
    users: list[IdpUser]


def get_user(session: Session, user_id: str) -> IdpUser:
    """The user with this SCIM id (404 noTarget-like SCIM error otherwise)."""
    row = session.get(IdpUser, user_id) if len(user_id) <= 64 else None
    if row is None:
        raise ScimRefused(f"no User with id {user_id!r}", status=404, scim_type=None)
    return row


def list_users(session: Session, *, filter: str | None, start_index: int, count: int) -> Page:
    """Users matching an `eq` filter (or all), ordered by creation; `start_index` is 1-based."""
    query = select(IdpUser)
    if filter and filter.strip():
        match = _FILTER.match(filter)
        attr = _FILTERABLE.get(re.sub(r"\s+", " ", match.group("attr").strip()).lower()) if match else None
        if match is None or attr is None:
            raise ScimRefused(
                f'unsupported filter {filter[:200]!r}: use userName, externalId, id or emails eq "…"',
                scim_type="invalidFilter",
            )
        value = match.group("value").replace('\\"', '"').replace("\\\\", "\\")
        column = getattr(IdpUser, attr)
        lowered = attr in ("user_name", "email")
        query = query.where(func.lower(column) == value.lower() if lowered else column == value)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(IdpUser.created_at), col(IdpUser.id)).offset(max(start_index, 1) - 1).limit(count)
    ).all()
    return Page(total=int(total), users=list(rows))


def create_user(session: Session, user: ScimUser, *, actor: str) -> IdpUser:
    """Provision a user (409 uniqueness when the userName is taken)."""
    user_name = str(user.user_name or "").strip().lower()
    taken = session.exec(select(IdpUser.id).where(IdpUser.user_name == user_name)).first()
    if taken is not None:
        raise ScimRefused(f"userName {user_name!r} is already provisioned", status=409, scim_type="uniqueness")
    row = IdpUser(user_name=user_name, email="", active=True)
    session.add(row)
    _apply(session, row, user, actor=actor, created=True)
    return row


def replace_user(session: Session, row: IdpUser, user: ScimUser, *, actor: str) -> IdpUser:
    """PUT: the resource becomes `user` (409 when its userName belongs to another user)."""
    user_name = str(user.user_name or "").strip().lower()
    other = session.exec(select(IdpUser.id).where(IdpUser.user_name == user_name, IdpUser.id != row.id)).first()
    if other is not None:
        raise ScimRefused(f"userName {user_name!r} belongs to another user", status=409, scim_type="uniqueness")
    _apply(session, row, user, actor=actor)
    return row


def patch_user(session: Session, row: IdpUser, body: object, *, actor: str) -> IdpUser:
    """PATCH: apply the operations to the stored resource, then as a PUT."""
    user = scim.load_stored(row.resource)
    user.active = row.active
    scim.apply_patch(user, body)
    return replace_user(session, row, user, actor=actor)


def delete_user(session: Session, row: IdpUser, *, actor: str) -> None:
    """DELETE: the user is gone from the IdP; an active one leaves first."""
    if row.active:
        _deactivate(session, row, actor=actor, reason=f"{row.email} was deleted in the identity provider")
    audit.record(
        session,
        actor=actor,
        action=AuditAction.idp_user_deleted,
        reason=f"{row.email} deprovisioned",
        data={"idp_user_id": row.id, "email": row.email},
    )
    session.delete(row)
    session.flush()


def leave(
    session: Session, email: str, *, source: str, actor: str, reason: str, dedup_key: str, data: dict[str, str]
) -> Emitted:
    """Emit `owner.left` for `email` once per `dedup_key` (hooks and reconciliation use this)."""
    return emit(
        session,
        type=EventType.owner_left,
        source=source,
        payload={"email": email.lower(), "actor": actor, "reason": reason, **data},
        dedup_key=dedup_key,
    )


def person_for(session: Session, *, external_id: str, login: str) -> str | None:
    """The catalogued person an IdP names: by the provisioned user's externalId, else by login/email."""
    if external_id:
        row = session.exec(select(IdpUser).where(IdpUser.external_id == external_id)).first()
        if row is not None and session.get(Person, row.email) is not None:
            return row.email
    email = login.strip().lower()
    if email and session.get(Person, email) is not None:
        return email
    return None


def find_by_reference(session: Session, ref: str) -> IdpUser | None:
    """The user whose SCIM id, externalId or userName is `ref` (Entra's examples name a manager by userName)."""
    if not ref:
        return None
    return session.exec(
        select(IdpUser)
        .where(or_(col(IdpUser.id) == ref, col(IdpUser.external_id) == ref, col(IdpUser.user_name) == ref.lower()))
        .limit(1)
    ).first()


def _apply(session: Session, row: IdpUser, user: ScimUser, *, actor: str, created: bool = False) -> None:
    was_active = row.active
    now = utcnow()
    row.user_name = str(user.user_name or "").strip().lower()
    row.external_id = str(user.external_id)[:200] if user.external_id else None
    row.email = scim.primary_email(user)[:320]
    row.display_name = str(user.display_name or _formatted_name(user) or "")[:200]
    row.manager_ref = (scim.manager_ref(user) or "")[:200] or None
    row.active = user.active is not False
    row.resource = scim.dump_for_storage(user)
    row.updated_at = now
    session.add(row)
    session.flush()
    _sync_person(session, row)
    if created:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.idp_user_provisioned,
            reason=f"{row.email} provisioned",
            data={"idp_user_id": row.id, "email": row.email, "active": row.active},
        )
    if was_active and not row.active:
        _deactivate(session, row, actor=actor, reason=f"{row.email} was deactivated in the identity provider")
    elif not was_active and row.active and not created:
        audit.record(
            session,
            actor=actor,
            action=AuditAction.idp_user_reactivated,
            reason=f"{row.email} reactivated in the identity provider; the hand-over already started goes on",
            data={"idp_user_id": row.id, "email": row.email},
        )
        log.info("idp user reactivated", idp_user_id=row.id)


def _deactivate(session: Session, row: IdpUser, *, actor: str, reason: str) -> None:
    row.deactivations += 1
    row.active = False
    row.deactivated_at = utcnow()
    session.add(row)
    session.flush()
    emitted = leave(
        session,
        row.email,
        source="scim",
        actor=actor,
        reason=reason,
        dedup_key=f"idp:owner.left:{row.id}:{row.deactivations}",
        data={"idp_user_id": row.id},
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.idp_user_deactivated,
        reason=reason,
        data={"idp_user_id": row.id, "email": row.email, "event_id": emitted.event.id},
    )


def _formatted_name(user: ScimUser) -> str:
    name = user.name
    if name is None:
        return ""
    return str(name.formatted or " ".join(p for p in (name.given_name, name.family_name) if p))


def _sync_person(session: Session, row: IdpUser) -> None:
    """The catalog's person for this user, and the manager links to and from them."""
    if not row.email or "@" not in row.email:
        return
    person = ensure_person(session, row.email, name=row.display_name)
    if row.display_name and person.name != row.display_name:
        person.name = row.display_name
    manager = find_by_reference(session, row.manager_ref) if row.manager_ref else None
    if manager is not None and manager.email and person.manager_email != manager.email:
        person.manager_email = manager.email
    session.add(person)
    # People provisioned before their manager: their manager is known now.
    refs = [r for r in (row.id, row.external_id, row.user_name) if r]
    reports = session.exec(select(IdpUser).where(col(IdpUser.manager_ref).in_(refs), IdpUser.id != row.id)).all()
    for report in reports:
        subordinate = session.get(Person, report.email)
        if subordinate is not None and subordinate.manager_email != row.email:
            subordinate.manager_email = row.email
            session.add(subordinate)
    session.flush()
