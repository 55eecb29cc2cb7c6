"""POST /webhooks/github: signature, size, ping, ignored, malformed and duplicate deliveries."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

from orchestrator.http.github import signature_for, signature_valid
from tests.conftest import FIXTURES
from tests.events.helpers import HELLO_REPO, catalogue, delivery, events, payload, sign

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

URL = "/webhooks/github"


def _push(app_id: str = "hello") -> dict[str, Any]:
    catalogue(app_id, repo=HELLO_REPO)
    return payload("push.with-new-branch.payload")


def test_github_documented_vector_verifies() -> None:
    """GitHub's documented example (secret, payload, signature) verifies with our HMAC check."""
    vector = json.loads((FIXTURES / "slack" / "vectors.json").read_text())["github_webhook_signature"]
    body = vector["payload"].encode()
    header = vector["expected_header"]["X-Hub-Signature-256"]
    assert signature_for(vector["secret"], body) == header
    assert signature_valid(body, header, [vector["secret"]])
    assert not signature_valid(body, header, ["another secret"])
    assert not signature_valid(body, header.replace("sha256=", "sha1="), [vector["secret"]])


def test_bad_signature_is_401_logged_and_stores_nothing(
    sqlite_client: TestClient, webhook_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A wrong or missing signature answers 401, writes a log line and stores no event."""
    body = json.dumps(_push()).encode()
    wrong = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": sign("nope", body)}
    response = sqlite_client.post(URL, content=body, headers=wrong)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    missing = sqlite_client.post(URL, content=body, headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-2"})
    assert missing.status_code == 401
    assert events(type="app.updated") == []
    assert "request refused" in caplog.text and "invalid_signature" in caplog.text


def test_no_secret_configured_refuses_everything(sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without GITHUB_WEBHOOK_SECRET nothing can be verified, so every delivery is refused."""
    from orchestrator.config import get_settings

    monkeypatch.delenv("GITHUB_WEBHOOK_SECRET", raising=False)
    get_settings.cache_clear()
    response = sqlite_client.post(URL, **delivery("push", _push(), "anything"))
    assert response.status_code == 401


def test_ping_is_200(sqlite_client: TestClient, webhook_secret: str) -> None:
    """A signed ping answers 200 and stores nothing."""
    response = sqlite_client.post(URL, **delivery("ping", payload("ping.payload"), webhook_secret))
    assert response.status_code == 200
    assert events() == []


def test_unused_event_is_202_ignored(sqlite_client: TestClient, webhook_secret: str) -> None:
    """An event type we do not use answers 202 {"ignored": true}."""
    response = sqlite_client.post(
        URL, **delivery("pull_request", payload("pull_request.opened.payload"), webhook_secret)
    )
    assert response.status_code == 202
    assert response.json()["ignored"] is True
    assert events() == []


def test_declared_size_over_limit_is_413(sqlite_client: TestClient, webhook_secret: str) -> None:
    """A Content-Length over 25 MB is refused with 413 before the body is read."""
    kwargs = delivery("push", b"{}", webhook_secret)
    kwargs["headers"]["Content-Length"] = str(25 * 1024 * 1024 + 1)
    assert sqlite_client.post(URL, **kwargs).status_code == 413


def test_streamed_body_over_limit_is_413(
    sqlite_client: TestClient, webhook_secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body that grows past the limit while it is read (no Content-Length) is refused with 413."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("GITHUB_WEBHOOK_MAX_BYTES", "1000")
    get_settings.cache_clear()
    chunks = iter([b"{" + b" " * 800, b" " * 800 + b"}"])
    kwargs = delivery("push", b"{}", webhook_secret)
    kwargs["content"] = chunks
    assert sqlite_client.post(URL, **kwargs).status_code == 413


def test_malformed_json_is_400(sqlite_client: TestClient, webhook_secret: str) -> None:
    """A correctly signed body that is not JSON answers 400."""
    response = sqlite_client.post(URL, **delivery("push", b"{not json", webhook_secret))
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_body"


def test_rotation_accepts_old_and_new_secret(sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """With GITHUB_WEBHOOK_SECRET=old,new deliveries signed with either secret are accepted; then new only."""
    from orchestrator.config import get_settings

    old, new = secrets.token_hex(8), secrets.token_hex(8)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", f"{old},{new}")
    get_settings.cache_clear()
    body = _push()
    assert sqlite_client.post(URL, **delivery("push", body, old)).status_code == 202
    assert sqlite_client.post(URL, **delivery("push", body, new)).status_code == 202
    assert sqlite_client.post(URL, **delivery("push", body, "third")).status_code == 401
    # The rotation done: the parsed secrets (cached per setting value) follow the setting.
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", new)
    get_settings.cache_clear()
    assert sqlite_client.post(URL, **delivery("push", body, old)).status_code == 401
    assert sqlite_client.post(URL, **delivery("push", body, new)).status_code == 202


def test_form_encoded_delivery_is_accepted(sqlite_client: TestClient, webhook_secret: str) -> None:
    """A hook configured for application/x-www-form-urlencoded (payload=<json>) works too."""
    raw = urlencode({"payload": json.dumps(_push())}).encode()
    kwargs = delivery("push", raw, webhook_secret)
    kwargs["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
    response = sqlite_client.post(URL, **kwargs)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_duplicate_delivery_answers_first_event(client: TestClient, webhook_secret: str) -> None:
    """A redelivery (same X-GitHub-Delivery) answers 200 with the first event id and stores nothing new."""
    body = _push()
    first = client.post(URL, **delivery("push", body, webhook_secret, guid="guid-1"))
    assert first.status_code == 202, first.text
    assert first.json()["duplicate"] is False
    again = client.post(URL, **delivery("push", body, webhook_secret, guid="guid-1"))
    assert again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    assert len(events(type="app.updated")) == 1
