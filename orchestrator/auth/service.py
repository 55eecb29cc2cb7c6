"""API tokens: created once, shown once, stored as SHA-256 digests; roles maker < approver < admin."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.auth.changes import announce
from orchestrator.auth.models import ApiToken, Role
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.clock import utcnow
from orchestrator.errors import Forbidden, NotFound, Unauthorized

TOKEN_PREFIX = "mao_"
_RANK = {Role.maker: 0, Role.approver: 1, Role.admin: 2}


def hash_token(token: str) -> str:
    """The digest stored for a token (a token has 256 bits of entropy, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, *, name: str, role: Role, person_email: str | None, actor: str) -> str:
    """Create a token and return it in clear; only its digest is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            role=role,
            person_email=person_email.lower() if person_email else None,
            token_hash=hash_token(token),
        )
    )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.token_created,
        reason=name,
        data={"role": role.value, "person": person_email},
    )
    session.flush()
    return token


def list_tokens(session: Session, *, include_revoked: bool = False) -> list[ApiToken]:
    """API tokens, oldest first; live ones only unless `include_revoked`."""
    query = select(ApiToken)
    if not include_revoked:
        query = query.where(col(ApiToken.revoked_at).is_(None))
    return list(session.exec(query.order_by(col(ApiToken.id))).all())


def revoke_token(
    session: Session, token_id: int, *, actor: str, reason: str | None = None, now: datetime | None = None
) -> ApiToken:
    """Revoke API token `token_id` (NotFound if there is none); idempotent, audited once.

    Every process stops accepting it once the transaction commits: requests look tokens up in the
    database, and caches of authenticated callers are told through `changes.announce`.
    """
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is not None:
        return row
    row.revoked_at = now or utcnow()
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.token_revoked,
        reason=reason or row.name,
        data={"token_id": row.id, "name": row.name, "role": Role(row.role).value, "person": row.person_email},
    )
    announce(session)
    return row


def revoke_tokens_of(session: Session, email: str, *, actor: str, reason: str) -> list[int]:
    """Revoke every live API token acting for `email`; the ids revoked."""
    rows = session.exec(
        select(ApiToken).where(ApiToken.person_email == email.lower(), col(ApiToken.revoked_at).is_(None))
    ).all()
    revoked = []
    for row in rows:
        assert row.id is not None
        revoke_token(session, row.id, actor=actor, reason=reason)
        revoked.append(row.id)
    return revoked


def authenticate(session: Session, token: str | None, *, scim: bool = False) -> ApiToken:
    """The live token row for a bearer token, or Unauthorized.

    A token of the `scim` role is accepted only where `scim=True` (the SCIM API), and only such a
    token is: the identity provider's credential opens nothing else, and nothing else opens SCIM.
    """
    if not token:
        raise Unauthorized("missing bearer token")
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).first()
    return _live(session, row, scim=scim)


def authenticate_id(session: Session, token_id: int) -> ApiToken:
    """The live token row with id `token_id` (a console session keeps the id), or Unauthorized.

    The same checks as `authenticate`: a token revoked, or whose person has left, since sign-in ends
    the session at its next request; a scim token never opens the console.
    """
    return _live(session, session.get(ApiToken, token_id))


def _live(session: Session, row: ApiToken | None, *, scim: bool = False) -> ApiToken:
    if row is None or row.revoked_at is not None:
        raise Unauthorized("unknown or revoked token")
    if (Role(row.role) is Role.scim) is not scim:
        raise Unauthorized("this needs a token of the scim role" if scim else "a scim token only opens /scim/v2")
    if row.person_email:
        person = session.get(Person, row.person_email)
        # Someone who has left keeps no access, even before their tokens are revoked one by one.
        if person is not None and not person.active:
            raise Unauthorized("the token's person is no longer active")
    return row


def require_role(token: ApiToken, role: Role) -> None:
    """Forbidden unless the token's role is at least `role`."""
    if _RANK.get(Role(token.role), -1) < _RANK[role]:
        raise Forbidden(f"this needs the {role.value} role; the token has {Role(token.role).value}")


def principal(token: ApiToken) -> str:
    """The name actions of this token are recorded under: the person, else the token name."""
    return token.person_email or f"token:{token.name}"


def can_see(token: ApiToken, app: MicroApp) -> bool:
    """Makers see their own apps only; approvers and admins see everything."""
    if Role(token.role) is not Role.maker:
        return True
    return token.person_email is not None and token.person_email.lower() in app.owners


def owns(token: ApiToken, emails: set[str] | frozenset[str]) -> bool:
    """True when the token acts for a person among `emails` (compared case-insensitively)."""
    return token.person_email is not None and token.person_email.lower() in {e.lower() for e in emails}
