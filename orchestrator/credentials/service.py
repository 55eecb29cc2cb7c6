"""The credential ledger service: issue, register, revoke and list what apps hold.

Database only, apart from the provider call each issue/revoke makes. Every change is recorded in
the ledger (never a secret) and in the audit trail, inside the caller's transaction — except when a
revocation fails: the attempt count and error are then committed before the error is raised, so
they survive the caller's rollback (see `revoke_credential`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, or_, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import utcnow
from orchestrator.credentials.models import Credential, CredentialSecret, CredentialStatus
from orchestrator.credentials.providers import Providers, get_provider
from orchestrator.credentials.tokens import keys
from orchestrator.credentials.tokens.builtin import BUILTIN
from orchestrator.credentials.tokens.sealing import seal, unseal
from orchestrator.errors import IntegrationError, NotFound, TransientIntegrationError, ValidationFailed
from orchestrator.integrations.credentials.base import IssuedCredential
from orchestrator.reviews.models import ReviewFinding

_TERMINAL = (CredentialStatus.revoked, CredentialStatus.expired)


def secret_purpose(credential_id: int) -> str:
    """The associated data a credential's sealed secret is bound to."""
    return f"credential-secret:{credential_id}"


_purpose = secret_purpose


def get_credential(session: Session, credential_id: int) -> Credential:
    """The ledger row, or NotFound."""
    credential = session.get(Credential, credential_id)
    if credential is None:
        raise NotFound(f"no credential with id {credential_id}")
    return credential


def live_credentials(session: Session, app_id: str, *, now: datetime | None = None) -> list[Credential]:
    """What `app_id` still holds: status live and not yet expired, oldest first."""
    now = now or utcnow()
    query = select(Credential).where(
        Credential.app_id == app_id,
        Credential.status == CredentialStatus.live,
        or_(col(Credential.expires_at).is_(None), col(Credential.expires_at) > now),
    )
    return list(session.exec(query.order_by(col(Credential.id))).all())


def live_issued_to(session: Session, subject: str, *, provider: str, now: datetime | None = None) -> list[int]:
    """Ids of the live, unexpired credentials of `provider` issued to `subject`, oldest first."""
    now = now or utcnow()
    query = select(Credential.id).where(
        Credential.provider == provider,
        Credential.subject == subject,
        Credential.status == CredentialStatus.live,
        or_(col(Credential.expires_at).is_(None), col(Credential.expires_at) > now),
    )
    return [credential_id for credential_id in session.exec(query.order_by(col(Credential.id))).all() if credential_id]


def list_credentials(
    session: Session, *, app_id: str | None = None, status: CredentialStatus | None = None, limit: int = 200
) -> list[Credential]:
    """Ledger rows, newest first, optionally for one app or one status."""
    query = select(Credential)
    if app_id:
        query = query.where(Credential.app_id == app_id)
    if status:
        query = query.where(Credential.status == status)
    return list(session.exec(query.order_by(col(Credential.id).desc()).limit(limit)).all())


def issue_credential(
    session: Session,
    app: MicroApp,
    *,
    provider_name: str,
    subject: str,
    scopes: list[str],
    ttl: timedelta | None,
    providers: Providers | None = None,
    actor: str | None = None,
) -> tuple[Credential, IssuedCredential]:
    """Have a provider issue a credential for `app` and record it; the secret is only in the result."""
    provider = get_provider(provider_name, providers)
    if provider_name == BUILTIN:
        keys.ensure_signing_key(session)
    issued = provider.issue(app_id=app.id, subject=subject, scopes=scopes, ttl=ttl)
    credential = Credential(
        app_id=app.id,
        provider=provider_name,
        external_ref=issued.external_ref,
        subject=subject,
        scopes=list(issued.scopes),
        expires_at=issued.expires_at,
        details=dict(issued.details),
    )
    session.add(credential)
    session.flush()
    audit.record(
        session,
        actor=actor or subject,
        action=AuditAction.credential_issued,
        app_id=app.id,
        data={"credential_id": credential.id, "provider": provider_name, "scopes": credential.scopes},
    )
    return credential, issued


def register_credential(
    session: Session,
    app_id: str,
    *,
    provider_name: str,
    external_ref: str,
    actor: str,
    subject: str = "",
    scopes: list[str] | None = None,
    expires_at: datetime | None = None,
    secret: str | None = None,
    providers: Providers | None = None,
) -> Credential:
    """Record a credential made outside (a Slack bot token…) so sunset revokes it; `secret` is sealed apart."""
    get_provider(provider_name, providers)
    credential = Credential(
        app_id=app_id,
        provider=provider_name,
        external_ref=external_ref,
        subject=subject,
        scopes=scopes or [],
        expires_at=expires_at,
        details={"registered_by": actor},
    )
    session.add(credential)
    session.flush()
    assert credential.id is not None
    if secret:
        session.add(
            CredentialSecret(credential_id=credential.id, sealed=seal(secret.encode(), purpose=_purpose(credential.id)))
        )
    audit.record(
        session,
        actor=actor,
        action=AuditAction.credential_registered,
        app_id=app_id,
        data={"credential_id": credential.id, "provider": provider_name, "external_ref": external_ref},
    )
    session.flush()
    return credential


def _locked(session: Session, credential_id: int) -> Credential:
    # FOR UPDATE serialises concurrent revokers on PostgreSQL (the loser then sees the new status);
    # SQLite write transactions are already exclusive.
    query = select(Credential).where(Credential.id == credential_id).with_for_update()
    credential = session.exec(query.execution_options(populate_existing=True)).first()
    if credential is None:
        raise NotFound(f"no credential with id {credential_id}")
    return credential


def _finish(
    session: Session,
    credential: Credential,
    *,
    status: CredentialStatus,
    actor: str,
    reason: str,
    note: str,
    data: dict[str, Any],
) -> Credential:
    credential.status = status
    credential.revoked_at = utcnow() if status is CredentialStatus.revoked else credential.revoked_at
    credential.note = note or None
    credential.last_error = None
    credential.details = {**credential.details, "revoked_by": actor, "reason": reason, **data}
    session.add(credential)
    secret = session.get(CredentialSecret, credential.id)
    if secret is not None:
        session.delete(secret)
    audit.record(
        session,
        actor=actor,
        action=AuditAction(f"credential.{status.value}"),
        app_id=credential.app_id,
        reason=reason,
        data={"credential_id": credential.id, "provider": credential.provider, "note": note, **data},
    )
    session.flush()
    return credential


def _forced_by(session: Session, credential: Credential, finding_id: int | None) -> dict[str, Any]:
    """The link to the review finding that forces this revocation (a leaked secret…), checked; {} for none."""
    if finding_id is None:
        return {}
    found = session.get(ReviewFinding, finding_id)
    if found is None:
        raise ValidationFailed(f"no review finding with id {finding_id}")
    if found.app_id != credential.app_id:
        raise ValidationFailed(f"finding {finding_id} is about {found.app_id}, not {credential.app_id}")
    return {"finding_id": finding_id, "finding_check": found.check, "finding_rule": found.rule}


def revoke_credential(
    session: Session,
    credential_id: int,
    *,
    actor: str,
    reason: str,
    providers: Providers | None = None,
    finding_id: int | None = None,
) -> Credential:
    """Make sure the credential no longer works and record it; idempotent.

    A revoked or expired credential is returned unchanged (no provider call). A live credential past
    its expiry is marked expired. Otherwise the provider revokes it. On failure `revoke_attempts` is
    incremented and `last_error` set, **the session is committed** so the count survives, and the
    error is raised: TransientIntegrationError (retry later) or IntegrationError (permanent).
    `finding_id`: the review finding of the same app that forced the revocation, recorded in the
    audit entry and the ledger (the KPI `finding_revocations` counts these).
    """
    credential = _locked(session, credential_id)
    if credential.status in _TERMINAL:
        return credential
    link = _forced_by(session, credential, finding_id)
    now = utcnow()
    if credential.expires_at is not None and credential.expires_at <= now:
        return _finish(
            session, credential, status=CredentialStatus.expired, actor=actor, reason=reason,
            note="expired before it was revoked", data=link,
        )  # fmt: skip
    stored = session.get(CredentialSecret, credential.id)
    secret = unseal(stored.sealed, purpose=_purpose(credential_id)).decode() if stored else None
    try:
        provider = get_provider(credential.provider, providers)
        result = provider.revoke(external_ref=credential.external_ref, expires_at=credential.expires_at, secret=secret)
    except IntegrationError as exc:
        credential.revoke_attempts += 1
        credential.last_error = f"{type(exc).__name__}: {exc.message}"[:2000]
        session.add(credential)
        session.commit()
        raise
    credential.revoke_attempts += 1
    data = {**({"already_gone": True} if result.already_gone else {}), **link}
    return _finish(
        session, credential, status=CredentialStatus.revoked, actor=actor, reason=reason, note=result.note, data=data
    )


def mark_zombie(session: Session, credential_id: int, *, reason: str, actor: str = "sunset") -> Credential:
    """Record that a credential could not be revoked after every attempt; a human must act."""
    credential = _locked(session, credential_id)
    if credential.status in _TERMINAL:
        return credential
    credential.status = CredentialStatus.zombie
    credential.note = reason
    session.add(credential)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.credential_zombie,
        app_id=credential.app_id,
        reason=reason,
        data={"credential_id": credential.id, "provider": credential.provider, "attempts": credential.revoke_attempts},
    )
    session.flush()
    return credential


def force_revoked(
    session: Session, credential_id: int, *, actor: str, reason: str, finding_id: int | None = None
) -> Credential:
    """Record a revocation done by hand (outside the provider); built-in tokens are also listed as revoked.

    `finding_id` as for `revoke_credential`.
    """
    credential = _locked(session, credential_id)
    if credential.status is CredentialStatus.revoked:
        return credential
    link = _forced_by(session, credential, finding_id)
    if credential.provider == BUILTIN:
        from orchestrator.credentials.tokens.revocation import get_revocation_list

        get_revocation_list().add(credential.external_ref, credential.expires_at)
    return _finish(
        session, credential, status=CredentialStatus.revoked, actor=actor, reason=reason,
        note=f"recorded as revoked by hand: {reason}", data={"forced": True, **link},
    )  # fmt: skip


@dataclass
class RevokeAllResult:
    """What `revoke_all` did: ids revoked (or found expired) and ids that failed, with the error."""

    revoked: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    transient: bool = False

    @property
    def complete(self) -> bool:
        """True when nothing failed."""
        return not self.failed


def revoke_all(
    session: Session, app_id: str, *, actor: str, reason: str, providers: Providers | None = None
) -> RevokeAllResult:
    """Revoke every live credential of `app_id`, carrying on past failures; the outcome per credential."""
    result = RevokeAllResult()
    for credential in live_credentials(session, app_id):
        assert credential.id is not None
        try:
            revoke_credential(session, credential.id, actor=actor, reason=reason, providers=providers)
        except IntegrationError as exc:
            result.failed[credential.id] = exc.message
            result.transient = result.transient or isinstance(exc, TransientIntegrationError)
            continue
        result.revoked.append(credential.id)
    return result
