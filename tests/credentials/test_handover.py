"""Approval issues the service credential; its owner claims the secret once; it is never stored or sent in clear."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from tests.credentials.conftest import exchange_form
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp


def _approve(app_id: str) -> None:
    """An approver approves the app's promotion request (the approval flow hands the credential over)."""
    from orchestrator.approvals import service as approvals
    from orchestrator.approvals.models import ApprovalRequest
    from orchestrator.db import session_scope

    with session_scope() as session:
        request = ApprovalRequest(app_id=app_id, requested_by="maker@example.com")
        session.add(request)
        session.flush()
        assert request.id is not None
        outcome = approvals.decide(
            session, request.id, decision=approvals.Decision.approve, actor="approver@example.com", via="test"
        )
        assert outcome.result is approvals.Result.decided, outcome.message


def _dump(db_url: str) -> str:
    from orchestrator.db import get_engine
    from orchestrator.tables import metadata

    out = []
    with get_engine(db_url).connect() as conn:
        for table in metadata.sorted_tables:
            out += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table.name}"'))]
    return "\n".join(out)


def test_owner_claims_the_service_secret_once(
    client: TestClient, make_app: Callable[..., MicroApp], make_token: Callable[..., str], db_url: str
) -> None:
    """On approval the owner is told (without the secret), claims it once, and it exchanges for tokens."""
    make_app(stage="in_review", approved_at=None)
    _approve("expense-helper")
    owner = make_token("maker", "maker@example.com")
    stranger = make_token("maker", "someone@example.com")
    assert client.post("/api/v1/apps/expense-helper/service-credential", headers=auth(stranger)).status_code == 404

    claimed = client.post("/api/v1/apps/expense-helper/service-credential", headers=auth(owner))
    assert claimed.status_code == 200, claimed.text
    secret = claimed.json()["secret"]
    assert claimed.json()["scopes"] == ["sheets:read", "sheets:write", "files:read"]
    again = client.post("/api/v1/apps/expense-helper/service-credential", headers=auth(owner))
    assert again.status_code == 404 and again.json()["error"] == "not_found"

    exchanged = client.post("/oauth/token", data=exchange_form(secret, scope="files:read"))
    assert exchanged.status_code == 200, exchanged.text
    dump = _dump(db_url)
    assert secret not in dump, "the service secret must not be stored in clear"
    assert "credential-ready:expense-helper" in dump  # the owner was told it is ready
    assert "credential.claimed" in dump


def test_no_scopes_nothing_to_claim(
    client: TestClient, make_app: Callable[..., MicroApp], make_token: Callable[..., str]
) -> None:
    """An app that asks for no scopes gets no service credential, so a claim is a 404."""
    make_app(stage="in_review", approved_at=None, requested_scopes=[])
    _approve("expense-helper")
    owner = make_token("maker", "maker@example.com")
    response = client.post("/api/v1/apps/expense-helper/service-credential", headers=auth(owner))
    assert response.status_code == 404
