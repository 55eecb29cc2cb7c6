"""Credential work the lifecycle triggers: issue on approval, revoke everything on suspension or sunset.

Wiring (for the approval and sunset flows):

- `issue_service_credentials(session, app)` right after the approval transition, in the same
  transaction. When the app's manifest asks for scopes, the app gets one service credential
  (provider `builtin-service`): a secret it presents as `subject_token` to `/oauth/token` to get
  short-lived tokens. It returns the new credentials' secrets — hand each to the owner once (a DM,
  the approval response); they are not stored. Idempotent: an app that already holds a live
  service credential gets nothing new (safe under at-least-once delivery).
- `revoke_all_for_app(session, app, actor=, reason=)` on suspension and in the sunset job. It tries
  every live credential and reports per credential; failed ones keep their attempt count and
  error in the ledger, so the caller retries later (TransientIntegrationError) or, after
  `policy.sunset.revoke_max_attempts`, calls `service.mark_zombie`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.credentials import service
from orchestrator.credentials.models import Credential
from orchestrator.credentials.providers import Providers
from orchestrator.credentials.tokens.builtin import SERVICE, service_subject
from orchestrator.credentials.tokens.exchange import effective_scopes


@dataclass(frozen=True)
class IssuedServiceCredential:
    """A new service credential: its ledger id and the secret to hand over once."""

    credential_id: int
    app_id: str
    secret: str
    scopes: list[str]


def issue_service_credentials(
    session: Session,
    app: MicroApp,
    *,
    actor: str = "policy",
    policy: Policy | None = None,
    providers: Providers | None = None,
) -> list[IssuedServiceCredential]:
    """Give a newly approved app its service credential if it asks for scopes; [] when it has one already."""
    policy = policy or get_policy()
    scopes = effective_scopes(app, None, policy)
    if not scopes:
        return []
    held = [c for c in service.live_credentials(session, app.id) if c.provider == SERVICE]
    if held:
        return []
    credential, issued = service.issue_credential(
        session, app, provider_name=SERVICE, subject=service_subject(app.id), scopes=scopes, ttl=None,
        providers=providers, actor=actor,
    )  # fmt: skip
    assert credential.id is not None and issued.secret is not None
    return [IssuedServiceCredential(credential.id, app.id, issued.secret, list(credential.scopes))]


def sync_service_credential(
    session: Session, app: MicroApp, *, actor: str, policy: Policy | None = None, widen: bool
) -> list[Credential]:
    """Bring the scopes of `app`'s live service credential in line with its catalogued manifest; what changed.

    Called when the catalog's manifest changes. `widen=False` (a narrowing applied at once) only ever
    removes scopes; `widen=True` (an approved manifest) gives the credential every scope the app may now
    exchange for. The secret stays the same, so the running app keeps working with the new scopes; a
    credential left with no scope at all is revoked.
    """
    policy = policy or get_policy()
    wanted = effective_scopes(app, None, policy)
    touched: list[Credential] = []
    for credential in [c for c in service.live_credentials(session, app.id) if c.provider == SERVICE]:
        assert credential.id is not None
        old = list(credential.scopes)
        new = wanted if widen else [s for s in old if s in wanted]
        if not new:
            service.revoke_credential(
                session, credential.id, actor=actor, reason="the app's manifest no longer asks for any scope"
            )
            touched.append(credential)
            continue
        if new == old:
            continue
        credential.scopes = list(new)
        session.add(credential)
        audit.record(
            session,
            actor=actor,
            action=AuditAction.credential_scopes_changed,
            app_id=app.id,
            reason="the catalog's manifest changed",
            data={"credential_id": credential.id, "from": old, "to": new},
        )
        touched.append(credential)
    session.flush()
    return touched


def revoke_all_for_app(
    session: Session, app: MicroApp, *, actor: str, reason: str, providers: Providers | None = None
) -> service.RevokeAllResult:
    """Revoke every live credential of `app` (service identity and every unexpired token)."""
    return service.revoke_all(session, app.id, actor=actor, reason=reason, providers=providers)
