"""POST /slack/events: Slack signatures, url_verification, and deleted users becoming owner.left."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING, Any, TypedDict

import pytest
from slack_sdk.signature import Clock

from orchestrator.http import slack_events
from tests.conftest import FIXTURES
from tests.events.helpers import events

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

URL = "/slack/events"


@pytest.fixture
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Slack signing secret made for this test, set as SLACK_SIGNING_SECRET."""
    from orchestrator.config import get_settings

    secret = secrets.token_hex(16)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", secret)
    get_settings.cache_clear()
    return secret


class _Signed(TypedDict):
    """The keyword arguments of a signed Slack request for the test client's `post`."""

    content: bytes
    headers: dict[str, str]


def _signed(body: dict[str, Any] | bytes, secret: str, *, at: int | None = None) -> _Signed:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    ts = str(at if at is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}", "Content-Type": "application/json"}
    return {"content": raw, "headers": headers}


def _user_change(
    user_id: str, *, deleted: bool = True, event_id: str = "Ev0001", email: str | None = None
) -> dict[str, Any]:
    user = {"id": user_id, "deleted": deleted, "profile": {"email": email} if email else {}}
    return {
        "type": "event_callback",
        "team_id": "T1",
        "event": {"type": "user_change", "user": user},
        "event_id": event_id,
    }


def test_documented_slack_vector_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack's documented signing example verifies (with the clock frozen at its timestamp)."""
    vector = json.loads((FIXTURES / "slack" / "vectors.json").read_text())["slack_request_signing"]

    class Frozen(Clock):
        def now(self) -> float:
            return float(vector["timestamp"])

    monkeypatch.setattr(slack_events, "clock", Frozen())
    body = vector["body"].encode()
    assert slack_events.verify(body, vector["headers"], vector["signing_secret"])
    assert not slack_events.verify(body + b"x", vector["headers"], vector["signing_secret"])
    monkeypatch.setattr(slack_events, "clock", Clock())
    assert not slack_events.verify(body, vector["headers"], vector["signing_secret"]), "a 2018 timestamp is stale"


def test_bad_or_stale_signature_is_401(sqlite_client: TestClient, signing_secret: str) -> None:
    """A wrong secret, a stale timestamp or no signature at all is refused with 401."""
    body = _user_change("U1")
    assert sqlite_client.post(URL, **_signed(body, "other")).status_code == 401
    assert sqlite_client.post(URL, **_signed(body, signing_secret, at=int(time.time()) - 600)).status_code == 401
    assert sqlite_client.post(URL, content=json.dumps(body)).status_code == 401
    bad_ts = _signed(body, signing_secret)
    bad_ts["headers"]["X-Slack-Request-Timestamp"] = "soon"
    assert sqlite_client.post(URL, **bad_ts).status_code == 401
    assert events() == []


def test_url_verification_answers_challenge(sqlite_client: TestClient, signing_secret: str) -> None:
    """A signed url_verification request gets its challenge back."""
    body = {"type": "url_verification", "token": "x", "challenge": secrets.token_urlsafe(24)}
    response = sqlite_client.post(URL, **_signed(body, signing_secret))
    assert response.status_code == 200
    assert response.json() == {"challenge": body["challenge"]}


@pytest.mark.parametrize("db_url", ["sqlite", "postgres"], indirect=True)
def test_deleted_user_is_owner_left_once(client: TestClient, signing_secret: str) -> None:
    """user_change with deleted:true emits owner.left for that Slack user; Slack's retry is a duplicate."""
    from orchestrator.catalog.models import Person
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.add(Person(email="leaver@example.com", slack_user_id="U42"))
        session.add(Person(email="by-email@example.com"))
    first = client.post(URL, **_signed(_user_change("U42", event_id="Ev1"), signing_secret))
    assert first.status_code == 200, first.text
    assert first.json()["duplicate"] is False
    retry = _signed(_user_change("U42", event_id="Ev1"), signing_secret)
    retry["headers"]["X-Slack-Retry-Num"] = "1"
    again = client.post(URL, **retry)
    assert again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    [event] = events(type="owner.left")
    assert (event.source, event.payload["email"]) == ("slack", "leaver@example.com")
    by_email = client.post(
        URL, **_signed(_user_change("U77", event_id="Ev2", email="By-Email@example.com"), signing_secret)
    )
    assert by_email.json()["duplicate"] is False
    assert {e.payload["email"] for e in events(type="owner.left")} == {"leaver@example.com", "by-email@example.com"}


def test_other_events_are_ignored(sqlite_client: TestClient, signing_secret: str) -> None:
    """A user_change that is not a deletion, an unknown user, or another event type is acknowledged and ignored."""
    for body in (
        _user_change("U1", deleted=False),
        _user_change("U-unknown"),
        {"type": "event_callback", "event": {"type": "message"}},
    ):
        response = sqlite_client.post(URL, **_signed(body, signing_secret))
        assert response.status_code == 200 and response.json()["ignored"] is True, response.text
    assert events() == []
