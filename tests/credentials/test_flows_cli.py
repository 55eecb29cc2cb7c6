"""Lifecycle flows (service credentials on approval, revoke everything on sunset) and the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from typer.testing import CliRunner, Result

from tests.credentials.conftest import exchange_form
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from orchestrator.catalog.models import MicroApp


def _cli(*args: str) -> Result:
    from orchestrator.cli import build

    return CliRunner().invoke(build(), list(args))


def test_service_credential_on_approval_exchanges_and_dies_at_sunset(
    client: TestClient, make_app: Callable[..., MicroApp], make_token: Callable[..., str]
) -> None:
    """An approved app's service identity exchanges for tokens; revoke_all_for_app kills it and its tokens."""
    from orchestrator.catalog.models import MicroApp
    from orchestrator.credentials import flows
    from orchestrator.db import session_scope

    make_app()
    gateway = make_token("admin", "it@example.com")
    with session_scope() as session:
        app = session.get_one(MicroApp, "expense-helper")
        [issued] = flows.issue_service_credentials(session, app)
        assert flows.issue_service_credentials(session, app) == []  # idempotent under redelivery
    assert issued.secret.startswith("mas_") and issued.scopes == ["sheets:read", "sheets:write", "files:read"]
    form = exchange_form(issued.secret, scope="files:read")
    response = client.post("/oauth/token", data=form)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    other = client.post("/oauth/token", data=exchange_form(issued.secret, audience="other-app"))
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    with session_scope() as session:
        result = flows.revoke_all_for_app(
            session, session.get_one(MicroApp, "expense-helper"), actor="sunset", reason="retired"
        )
    assert result.complete and len(result.revoked) == 2
    introspected = client.post("/oauth/introspect", data={"token": token}, headers=auth(gateway)).json()
    assert introspected == {"active": False}
    again = client.post("/oauth/token", data=form)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_no_scopes_no_service_credential(sqlite_url: str, make_app: Callable[..., MicroApp]) -> None:
    """An app whose manifest asks for no scopes gets no service credential."""
    from orchestrator.credentials import flows
    from orchestrator.db import session_scope

    app = make_app(requested_scopes=[])
    with session_scope() as session:
        assert flows.issue_service_credentials(session, app) == []


def test_cli_list_and_revoke(
    client: TestClient, make_app: Callable[..., MicroApp], make_token: Callable[..., str]
) -> None:
    """`credentials list` shows the ledger without secrets; `revoke` revokes; `--force` needs a reason."""
    make_app()
    response = client.post("/oauth/token", data=exchange_form(make_token("maker", "maker@example.com")))
    token = response.json()["access_token"]
    listed = _cli("credentials", "list", "--app", "expense-helper", "--json")
    assert listed.exit_code == 0, listed.output
    [row] = [json.loads(line) for line in listed.output.splitlines()]
    assert row["status"] == "live" and row["provider"] == "builtin" and token not in listed.output
    table = _cli("credentials", "list")
    assert "expense-helper" in table.output and "maker@example.com" in table.output
    revoked = _cli("credentials", "revoke", str(row["id"]))
    assert revoked.exit_code == 0 and f"credential {row['id']}: revoked" in revoked.output
    assert _cli("credentials", "revoke", str(row["id"])).exit_code == 0  # idempotent
    refused = _cli("credentials", "revoke", str(row["id"]), "--force")
    assert refused.exit_code == 2 and "error: --force needs --reason" in refused.output
    missing = _cli("credentials", "revoke", "9999")
    assert missing.exit_code == 1 and "error: no credential with id 9999" in missing.output
    assert "Traceback" not in missing.output


def test_cli_force_records_a_manual_revocation(sqlite_url: str, make_app: Callable[..., MicroApp]) -> None:
    """`revoke ID --force --reason …` records a revocation done outside the provider."""
    from orchestrator.credentials import service
    from orchestrator.db import session_scope

    make_app()
    with session_scope() as session:
        row = service.register_credential(session, "expense-helper", provider_name="slack", external_ref="T/B",
                                          actor="it")  # fmt: skip
    result = _cli("credentials", "revoke", str(row.id), "--force", "--reason", "removed the Slack app by hand")
    assert result.exit_code == 0, result.output
    with session_scope(write=False) as session:
        assert row.id is not None
        assert service.get_credential(session, row.id).details["forced"] is True


def test_service_credential_bounds_the_exchanged_scopes(client: TestClient, make_app: Callable[..., MicroApp]) -> None:
    """A token exchanged for a service credential never carries a scope the credential itself does not hold."""
    from orchestrator.catalog.models import MicroApp
    from orchestrator.credentials import flows
    from orchestrator.credentials.models import Credential
    from orchestrator.db import session_scope

    make_app()
    with session_scope() as session:
        [issued] = flows.issue_service_credentials(session, session.get_one(MicroApp, "expense-helper"))
        row = session.get_one(Credential, issued.credential_id)
        row.scopes = ["files:read"]  # e.g. issued before the app's other scopes were allowed
        session.add(row)
    asked = client.post("/oauth/token", data=exchange_form(issued.secret, scope="sheets:write files:read"))
    assert asked.status_code == 200, asked.text
    assert asked.json()["scope"] == "files:read"
    unasked = client.post("/oauth/token", data=exchange_form(issued.secret))
    assert unasked.json()["scope"] == "files:read"
    beyond = client.post("/oauth/token", data=exchange_form(issued.secret, scope="sheets:read"))
    assert beyond.status_code == 400 and beyond.json()["error"] == "invalid_scope"


def test_cli_revoke_names_the_finding_that_forced_it(sqlite_url: str, make_app: Callable[..., MicroApp]) -> None:
    """`revoke ID --finding F` records the finding in the audit entry and the ledger; a wrong finding is refused."""
    from sqlmodel import select

    from orchestrator.audit.models import AuditEntry
    from orchestrator.clock import utcnow
    from orchestrator.credentials import service
    from orchestrator.db import session_scope
    from orchestrator.reviews.checks.findings import Severity
    from orchestrator.reviews.models import ReviewFinding
    from tests.kpis.history import finding, review

    make_app()
    make_app("other-app")
    review("expense-helper", utcnow(), [finding("secrets", "aws-access-key", Severity.high, "leak")])
    review("other-app", utcnow(), [finding("secrets", "aws-access-key", Severity.high, "other")])
    with session_scope() as session:
        row = service.register_credential(session, "expense-helper", provider_name="slack", external_ref="T/B",
                                          actor="it")  # fmt: skip
        leak, other = (
            session.exec(select(ReviewFinding.id).where(ReviewFinding.app_id == app)).one()
            for app in ("expense-helper", "other-app")
        )
    args = ("credentials", "revoke", str(row.id), "--force", "--reason", "leaked key, removed by hand")
    unknown = _cli(*args, "--finding", "9999")
    assert unknown.exit_code == 1 and "error: no review finding with id 9999" in unknown.output
    elsewhere = _cli(*args, "--finding", str(other))
    assert elsewhere.exit_code == 1 and f"finding {other} is about other-app" in elsewhere.output
    result = _cli(*args, "--finding", str(leak))
    assert result.exit_code == 0, result.output
    with session_scope(write=False) as session:
        assert row.id is not None
        assert service.get_credential(session, row.id).details["finding_id"] == leak
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "credential.revoked")).one()
        assert (entry.data["finding_id"], entry.data["finding_check"]) == (leak, "secrets")
