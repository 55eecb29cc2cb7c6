"""Handing a new service credential to its app's owner without ever sending it in clear.

On approval the secret is sealed (AES-GCM, see `sealing.py`) in the `credential_secret` row of
its credential and the owner is told — by DM or log — that a credential is ready, never what it
is. An owner or co-owner claims it once over the API (`POST /api/v1/apps/{id}/service-credential`
or `orchestrator credentials claim APP`); the sealed copy is deleted as it is returned, so a second
claim finds nothing. Revoking the credential deletes the sealed copy too.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.credentials import flows, service
from orchestrator.credentials.models import Credential, CredentialSecret, CredentialStatus
from orchestrator.credentials.tokens.builtin import SERVICE
from orchestrator.credentials.tokens.sealing import seal, unseal
from orchestrator.errors import NotFound


def on_app_approved(session: Session, app: MicroApp, *, policy: Policy, actor: str) -> list[int]:
    """Issue the app's service credential (if its manifest asks for scopes) and park it for a claim.

    An app that already holds one (a re-approval after its manifest changed) keeps it, with its scopes
    brought in line with the approved manifest: the running app needs no new claim.
    """
    flows.sync_service_credential(session, app, actor=actor, policy=policy, widen=True)
    issued = flows.issue_service_credentials(session, app, actor=actor, policy=policy)
    for item in issued:
        session.add(
            CredentialSecret(
                credential_id=item.credential_id,
                sealed=seal(item.secret.encode("utf-8"), purpose=service.secret_purpose(item.credential_id)),
            )
        )
    if issued:
        from orchestrator.notifications.service import notify

        notify(
            session,
            to=app.owner_email,
            text=(
                f"{app.name} is approved. Its service credential (scopes: {', '.join(issued[0].scopes)}) is ready: "
                f"claim it once with `orchestrator credentials claim {app.id}`."
            ),
            key=f"credential-ready:{app.id}:{issued[0].credential_id}",
            app_id=app.id,
        )
    session.flush()
    return [item.credential_id for item in issued]


def claim_service_credential(session: Session, app: MicroApp, *, actor: str) -> tuple[Credential, str]:
    """Return the sealed service secret of `app` once, deleting the sealed copy; NotFound afterwards."""
    rows = session.exec(
        select(Credential, CredentialSecret)
        .join(CredentialSecret, col(CredentialSecret.credential_id) == col(Credential.id))
        .where(Credential.app_id == app.id, Credential.provider == SERVICE)
        .where(Credential.status == CredentialStatus.live)
        .with_for_update()
    ).all()
    if not rows:
        raise NotFound(f"no unclaimed service credential for {app.id!r}")
    credential, sealed = rows[0]
    assert credential.id is not None
    secret = unseal(sealed.sealed, purpose=service.secret_purpose(credential.id)).decode("utf-8")
    session.delete(sealed)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.credential_claimed,
        app_id=app.id,
        reason="service credential handed to an owner",
        data={"credential_id": credential.id},
    )
    session.flush()
    return credential, secret
