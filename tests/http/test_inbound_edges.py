"""Inbound endpoints under hostile or odd input: a clear 4xx, never a 500, never an unbounded read."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.approvals.models import ApprovalKind
from orchestrator.catalog.models import Person
from orchestrator.events.models import Event
from tests.factories import auth
from tests.http.helpers import seed_app

SLACK_SECRET = "slack-signing-secret-for-tests"
GITHUB_SECRET = "github-webhook-secret-for-tests"
NON_ASCII = "v0=\xe9".encode("latin-1")  # a header byte a client can send; decoded as latin-1


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack and GitHub secrets configured."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    get_settings.cache_clear()


def _slack_signed(body: bytes) -> dict[str, Any]:
    ts = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"content": body, "headers": {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}}


def _chunks(total: int) -> Iterator[bytes]:
    # An iterator body goes out chunked, with no Content-Length to refuse it by.
    for _ in range(total // 65536 + 1):
        yield b"a" * 65536


FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "headers, body",
    [
        ({"x-slack-request-timestamp": "not-a-number", "x-slack-signature": "v0=00"}, b"payload=%7B%7D"),
        ({"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": NON_ASCII}, b"payload=%7B%7D"),
        ({"x-slack-request-timestamp": str(int(time.time())), "x-slack-signature": "v0=00"}, b"payload=\xff"),
    ],
    ids=["timestamp-not-a-number", "signature-not-ascii", "body-not-utf8"],
)
@pytest.mark.parametrize("url", ["/slack/interactions", "/slack/events"])
def test_malformed_slack_signature_is_401(
    client: Any, secrets_set: None, url: str, headers: dict[str, str], body: bytes
) -> None:
    """slack_sdk raises on these; the endpoint must refuse them as bad signatures, not answer 500."""
    response = client.post(url, content=body, headers={**FORM, **headers})
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_signature"


def test_non_ascii_github_signature_is_401(client: Any, secrets_set: None) -> None:
    """hmac.compare_digest refuses non-ASCII str; the webhook must still answer 401."""
    headers = {"x-hub-signature-256": b"sha256=\xe9", "x-github-event": "push", "x-github-delivery": "d-1"}
    response = client.post("/webhooks/github", content=b"{}", headers=headers)
    assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    "url, headers",
    [("/slack/interactions", FORM), ("/slack/events", {}), ("/oauth/token", FORM)],
)
def test_chunked_body_over_the_cap_is_413(client: Any, secrets_set: None, url: str, headers: dict[str, str]) -> None:
    """Without a Content-Length the cap is enforced while reading, before any signature work."""
    response = client.post(url, content=_chunks(2 * 1024 * 1024), headers=headers)
    assert response.status_code == 413, response.text


@pytest.mark.parametrize(
    "event",
    [
        {"type": "event_callback", "event_id": "Ev1", "event": "not-an-object"},
        {
            "type": "event_callback",
            "event_id": "Ev2",
            "event": {"type": "user_change", "user": {"id": "U9", "deleted": True, "profile": "not-an-object"}},
        },
    ],
    ids=["event-not-object", "profile-not-object"],
)
def test_odd_slack_event_shapes_are_not_a_500(client: Any, secrets_set: None, event: dict[str, Any]) -> None:
    """A signed event of an unexpected shape is acknowledged and ignored."""
    response = client.post("/slack/events", **_slack_signed(json.dumps(event).encode()))
    assert response.status_code == 200, response.text
    assert response.json()["ignored"] is True


def test_left_idempotency_key_is_scoped_to_the_person(client: Any, make_token: Any) -> None:
    """The same Idempotency-Key for two people records both departures, not one and a 'duplicate'."""
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.add(Person(email="a@example.com"))
        session.add(Person(email="b@example.com"))
    headers = {**auth(make_token("admin", "it@example.com")), "Idempotency-Key": "batch-7"}
    first = client.post("/api/v1/people/a@example.com/left", headers=headers)
    second = client.post("/api/v1/people/b@example.com/left", headers=headers)
    assert (first.status_code, second.status_code) == (202, 202), second.text
    assert client.post("/api/v1/people/b@example.com/left", headers=headers).json() == {
        "event_id": second.json()["event_id"],
        "duplicate": True,
    }
    with session_scope(write=False) as session:
        left = session.exec(select(Event).where(Event.type == "owner.left")).all()
    assert sorted(e.payload["email"] for e in left) == ["a@example.com", "b@example.com"]


def test_decision_needs_a_token_of_a_person(client: Any, make_token: Any) -> None:
    """An approver token with no person gets a 403 saying so, and nothing is recorded for 'slack:None'."""
    from orchestrator.audit.models import AuditEntry
    from orchestrator.catalog import service as catalog
    from orchestrator.db import session_scope

    app_id = seed_app()
    with session_scope() as session:
        request, _ = catalog.open_approval(
            session, catalog.get_app(session, app_id), kind=ApprovalKind.extension, requested_by="maker@example.com"
        )
        approval_id = request.id
    token = make_token("admin", None, name="ci-bot")
    response = client.post(
        f"/api/v1/approvals/{approval_id}/decision", json={"decision": "approve"}, headers=auth(token)
    )
    assert response.status_code == 403, response.text
    assert "--email" in response.json()["detail"]
    with session_scope(write=False) as session:
        actors = {e.actor for e in session.exec(select(AuditEntry)).all()}
    assert "slack:None" not in actors


def test_github_payload_of_an_unexpected_shape_is_400(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A signed delivery whose `repository` is not an object is refused with 400, not a 500."""
    import hashlib
    import hmac
    import json
    import secrets

    secret = secrets.token_hex(16)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", secret)
    from orchestrator.config import get_settings

    get_settings.cache_clear()
    body = json.dumps({"action": "archived", "repository": "not-an-object"}).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(
        "/webhooks/github",
        content=body,
        headers={
            "X-Hub-Signature-256": signature,
            "X-GitHub-Event": "repository",
            "X-GitHub-Delivery": "odd-shape-1",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_body" and "Traceback" not in response.text
