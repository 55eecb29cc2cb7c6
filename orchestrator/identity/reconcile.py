"""Reconciliation: catalogued people the IdP no longer lists as active are reported as left.

It catches what hooks and SCIM calls missed (a hook that was down, a provisioning not set up for
everyone). The danger is the opposite mistake — an IdP outage, an expired token, a truncated export
read as "everyone left" — so a listing is refused, audited and nothing is emitted, when

- it could not be read at all (the caller passes `None`), or lists no active user, or
- it would mark more than `max_fraction` of the active people as left.

Each person missing from the listing gets one `owner.left` (source `reconcile`), deduplicated per
departure, so runs that overlap or follow before the event is handled do not repeat it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import Person
from orchestrator.config import Settings
from orchestrator.db import session_scope
from orchestrator.errors import IntegrationError
from orchestrator.identity.service import leave
from orchestrator.integrations.idp import DirectoryUser, ScimDirectory, users_from_file
from orchestrator.logs import get_logger

log = get_logger(__name__)
ACTOR = "idp-reconcile"


@dataclass
class Reconciled:
    """What one reconciliation saw and did."""

    listed_active: int
    active_people: int
    left: list[str] = field(default_factory=list)
    refused: str | None = None


def reconcile(
    session: Session,
    active_addresses: Iterable[str] | None,
    *,
    max_fraction: float,
    failure: str | None = None,
) -> Reconciled:
    """Emit owner.left for active people not among `active_addresses`, unless the listing looks wrong."""
    people = session.exec(select(Person).where(col(Person.active).is_(True)).order_by(col(Person.email))).all()
    listed = {a.strip().lower() for a in active_addresses or () if a and a.strip()}
    outcome = Reconciled(listed_active=len(listed), active_people=len(people))
    missing = [p for p in people if p.email.lower() not in listed]
    if active_addresses is None or failure:
        outcome.refused = f"the IdP's users could not be read: {failure or 'no listing'}"
    elif not listed:
        outcome.refused = "the IdP listed no active user"
    elif people and len(missing) / len(people) > max_fraction:
        outcome.refused = (
            f"{len(missing)} of {len(people)} active people are missing from the IdP's listing, "
            f"over IDP_RECONCILE_MAX_FRACTION={max_fraction}"
        )
    if outcome.refused:
        log.warning("idp reconciliation refused", reason=outcome.refused)
        audit.record(
            session,
            actor=ACTOR,
            action=AuditAction.idp_reconcile_refused,
            reason=outcome.refused,
            data={"listed_active": len(listed), "active_people": len(people), "missing": len(missing)},
        )
        return outcome
    for person in missing:
        marker = person.left_at.isoformat() if person.left_at else "active"
        leave(
            session,
            person.email,
            source="reconcile",
            actor=ACTOR,
            reason=f"{person.email} is not an active user in the identity provider",
            dedup_key=f"idp-reconcile:{person.email}:{marker}",
            data={},
        )
        outcome.left.append(person.email)
    audit.record(
        session,
        actor=ACTOR,
        action=AuditAction.idp_reconciled,
        reason=f"{len(missing)} of {len(people)} active people are no longer active in the IdP",
        data={"listed_active": len(listed), "active_people": len(people), "left": outcome.left[:100]},
    )
    return outcome


def read_directory(settings: Settings) -> list[DirectoryUser] | None:
    """The IdP's users from IDP_USERS_FILE, else IDP_SCIM_URL; None when neither is configured."""
    if settings.idp_users_file is not None:
        return users_from_file(settings.idp_users_file)
    if not settings.idp_scim_url:
        return None
    token = settings.idp_scim_token.get_secret_value() if settings.idp_scim_token else None
    with ScimDirectory(settings.idp_scim_url, token, page_size=settings.idp_page_size) as directory:
        return directory.users()


def reconcile_now(settings: Settings) -> Reconciled | None:
    """One reconciliation against the configured directory (None when none is configured)."""
    failure: str | None = None
    users: list[DirectoryUser] | None = None
    try:
        users = read_directory(settings)
        if users is None:
            return None
    except IntegrationError as exc:  # the transient kind included: refused now, the next run tries again
        failure = str(exc)[:300]
    active = None if users is None else [a for u in users if u.active for a in u.addresses]
    with session_scope() as session:
        return reconcile(session, active, max_fraction=settings.idp_reconcile_max_fraction, failure=failure)
