"""`POST /api/v1/apps/{id}/service-credential`: an owner claims the app's new service credential once."""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from pydantic import BaseModel

from orchestrator.auth.models import Role
from orchestrator.auth.service import owns, principal
from orchestrator.catalog import service as catalog
from orchestrator.credentials.handover import claim_service_credential
from orchestrator.db import session_scope
from orchestrator.errors import Forbidden, NotFound
from orchestrator.http.deps import CurrentToken

router = APIRouter(prefix="/api/v1/apps", tags=["credentials"])


class ClaimedCredential(BaseModel):
    """The service secret, shown this once; exchange it at /oauth/token for short-lived tokens."""

    credential_id: int
    app_id: str
    scopes: list[str]
    secret: str


@router.post("/{app_id}/service-credential", response_model=ClaimedCredential)
def claim(app_id: str, token: CurrentToken) -> ClaimedCredential:
    """Hand the unclaimed service secret of an approved app to one of its owners (or an admin), once."""
    structlog.contextvars.bind_contextvars(app_id=app_id)
    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        if not owns(token, app.owners) and Role(token.role) is not Role.admin:
            if Role(token.role) is Role.maker:
                raise NotFound(f"no app with id {app_id!r}")
            raise Forbidden("only an owner, a co-owner or an admin can claim the service credential")
        credential, secret = claim_service_credential(session, app, actor=principal(token))
        assert credential.id is not None
        return ClaimedCredential(
            credential_id=credential.id, app_id=app.id, scopes=list(credential.scopes), secret=secret
        )
