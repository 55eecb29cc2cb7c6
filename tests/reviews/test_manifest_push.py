"""A push that changes `microapp.yaml`, end to end: the real API, a Celery worker on Redis, real git repositories.

The re-review reads the pushed manifest. A scope added to an approved app makes the review ask for an
approval (even in a data class approved automatically); once an approver approves, the catalog holds the
new scope and the app's service credential — the secret its owner already claimed — exchanges for it.
A scope removed leaves the catalog and the credential at once, whatever the review's verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.db import session_scope
from orchestrator.reviews.models import ReviewFinding
from tests.factories import auth
from tests.reviews.conftest import Stack
from tests.reviews.helpers import github_token, make_repo, manifest_text
from tests.reviews.test_flow import CLEAN_CODE, app_row, emit_push, notifications, register, wait_done

pytestmark = [pytest.mark.redis, pytest.mark.slow]
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
PUBLIC_APPROVER = "it-platform@example.com"  # the default policy's approver of public apps


@pytest.fixture(autouse=True)
def fresh_credential_caches(stack: Stack) -> None:
    """The in-process API reads the stack's sealing key, not one an earlier module cached."""
    from tests.credentials.conftest import reset_credential_caches

    reset_credential_caches()


def claim(stack: Stack, app_id: str) -> str:
    """The owner claims the approved app's service secret over the API."""
    response = stack.api.post(f"/api/v1/apps/{app_id}/service-credential", headers=auth(stack.maker_token))
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


def exchange(stack: Stack, secret: str, app_id: str, scope: str) -> Any:
    """Exchange the service secret for a token of `scope`."""
    form = {
        "grant_type": GRANT,
        "subject_token": secret,
        "subject_token_type": ACCESS_TOKEN,
        "audience": app_id,
        "scope": scope,
    }
    return stack.api.post("/oauth/token", data=form)


def approver_token() -> str:
    """An API token of the public apps' approver."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token

    with session_scope() as session:
        return create_token(session, name="approver", role=Role.approver, person_email=PUBLIC_APPROVER, actor="test")


def test_a_pushed_scope_is_approved_into_the_catalog_and_the_token_exchange(stack: Stack, tmp_path: Path) -> None:
    """push → re-review (needs_approval) → approval → the catalog's scopes → the exchange for the new scope."""
    repo = make_repo(tmp_path / "grow", {"microapp.yaml": manifest_text("Grow Tool"), "app.py": CLEAN_CODE})
    app_id = register(stack, "Grow Tool", "public", str(repo.path))
    [first] = wait_done(app_id)
    assert first.verdict == "pass" and app_row(app_id).stage == "production"
    secret = claim(stack, app_id)
    refused = exchange(stack, secret, app_id, "sheets:read")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"

    repo.write({"microapp.yaml": manifest_text("Grow Tool", scopes=["repo:read", "sheets:read"])})
    emit_push(app_id, repo.commit("ask for sheets"))
    _, second = wait_done(app_id, count=2)
    assert (second.verdict, second.trigger) == ("needs_approval", "app.updated")
    assert second.manifest is not None and second.manifest["scopes"] == ["repo:read", "sheets:read"]
    with session_scope(write=False) as session:
        [finding] = session.exec(
            select(ReviewFinding).where(ReviewFinding.review_id == second.id, ReviewFinding.rule == "manifest-widened")
        ).all()
        [request] = session.exec(
            select(ApprovalRequest).where(ApprovalRequest.app_id == app_id, ApprovalRequest.status == "pending")
        ).all()
    assert "scopes added: sheets:read" in finding.message and request.review_id == second.id
    assert app_row(app_id).requested_scopes == ["repo:read"]  # not before the approval

    decided = stack.api.post(
        f"/api/v1/approvals/{request.id}/decision", json={"decision": "approve"}, headers=auth(approver_token())
    )
    assert decided.status_code == 200, decided.text
    app = app_row(app_id)
    assert app.stage == "production" and app.requested_scopes == ["repo:read", "sheets:read"]
    granted = exchange(stack, secret, app_id, "sheets:read")
    assert granted.status_code == 200, granted.text
    assert granted.json()["scope"] == "sheets:read"
    assert any("now in the catalog: scopes added: sheets:read" in n.text for n in notifications(app_id))


def test_a_pushed_narrowing_applies_at_once_even_when_the_review_fails(stack: Stack, tmp_path: Path) -> None:
    """A removed scope leaves the catalog and the service credential at once; the owner is told."""
    scopes = ["repo:read", "sheets:read"]
    files = {"microapp.yaml": manifest_text("Shrink Tool", scopes=scopes), "app.py": CLEAN_CODE}
    repo = make_repo(tmp_path / "shrink", files)
    app_id = register(stack, "Shrink Tool", "public", str(repo.path), scopes=scopes)
    [first] = wait_done(app_id)
    assert first.verdict == "pass"
    secret = claim(stack, app_id)
    assert exchange(stack, secret, app_id, "sheets:read").status_code == 200

    repo.write(
        {
            "microapp.yaml": manifest_text("Shrink Tool", scopes=["repo:read"]),
            "settings.py": f'TOKEN = "{github_token()}"\n',
        }
    )
    emit_push(app_id, repo.commit("drop sheets, leak a token"))
    _, second = wait_done(app_id, count=2)
    assert second.verdict == "fail"
    app = app_row(app_id)
    assert app.stage == "in_review" and app.requested_scopes == ["repo:read"]
    refused = exchange(stack, secret, app_id, "sheets:read")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    assert exchange(stack, secret, app_id, "repo:read").status_code == 200
    assert any("Applied now: scopes removed: sheets:read" in n.text for n in notifications(app_id))
