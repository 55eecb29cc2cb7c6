"""A database outage: every endpoint that needs the database answers 503 with Retry-After; /readyz names it."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

GITHUB_SECRET = "github-webhook-secret-for-outage"


def _closed_port() -> int:
    # Bound then closed: nothing listens there, so a connection is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def down_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The real app pointed at a PostgreSQL URL on a port nothing listens on."""
    from fastapi.testclient import TestClient

    from orchestrator.config import get_settings
    from orchestrator.http.app import create_app

    password = "outage-password-not-to-leak"
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://orch:{password}@127.0.0.1:{_closed_port()}/orch")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    get_settings.cache_clear()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client
    get_settings.cache_clear()


def _assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    body = response.json()
    assert body["error"] == "database_unavailable"
    assert "outage-password" not in response.text and "Traceback" not in response.text


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/api/v1/apps"),
        ("GET", "/api/v1/apps/expense-helper"),
        ("POST", "/api/v1/apps"),
        ("GET", "/api/v1/approvals"),
        ("GET", "/api/v1/events"),
    ],
)
def test_api_answers_503_with_retry_after(down_client: Any, method: str, path: str) -> None:
    """Authentication itself needs the database: the caller is told to retry, not handed a 500."""
    response = down_client.request(method, path, headers={"Authorization": "Bearer orch_anything"}, json={})
    _assert_unavailable(response)


def test_webhook_answers_503(down_client: Any) -> None:
    """A signed GitHub delivery is answered 503, so GitHub's redelivery brings it back later."""
    body = json.dumps({"repository": {"full_name": "o/r", "html_url": "https://github.com/o/r"}}).encode()
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "outage-1",
        "Content-Type": "application/json",
    }
    _assert_unavailable(down_client.post("/webhooks/github", content=body, headers=headers))


def test_readyz_names_the_database(down_client: Any) -> None:
    """/readyz is 503 naming the database (no password); /healthz (liveness) stays 200."""
    response = down_client.get("/readyz")
    assert response.status_code == 503, response.text
    assert "database" in response.json()["detail"]
    assert "outage-password" not in response.text
    assert down_client.get("/healthz").status_code == 200


def test_a_database_error_log_line_carries_no_bound_value(db_url: str) -> None:
    """Errors raised by the database name the statement, never the values bound to it (they may be secrets)."""
    from sqlalchemy import text

    from orchestrator.db import session_scope

    secret = "bound-value-not-to-log"
    with pytest.raises(Exception) as raised, session_scope() as session:
        session.execute(text("SELECT no_such_column FROM microapp WHERE id = :id"), {"id": secret})
    assert "no_such_column" in str(raised.value) and secret not in str(raised.value)
