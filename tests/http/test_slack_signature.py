"""Slack request signing: Slack's documented example verifies; bad or stale requests get 401 and change nothing."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from slack_sdk.signature import Clock
from sqlmodel import select

from bench.slack_requests import APPROVER, SLACK_IDS, click, sign
from orchestrator.approvals.messages import SlackAction
from orchestrator.db import session_scope
from orchestrator.errors import SignatureInvalid
from orchestrator.http.app import create_app
from orchestrator.http.slack import verify_signature
from orchestrator.notifications.models import SlackInteraction
from tests.conftest import FIXTURES


class FixedClock(Clock):
    """A clock stopped at one instant."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self) -> float:
        """The fixed instant."""
        return self._now


def _vector() -> dict[str, Any]:
    vector: dict[str, Any] = json.loads((FIXTURES / "slack" / "vectors.json").read_text())["slack_request_signing"]
    return vector


def test_documented_example_verifies() -> None:
    """Slack's documented signing example verifies with SignatureVerifier at its own time."""
    v = _vector()
    verify_signature(
        v["body"].encode(), v["headers"], secret=v["signing_secret"], clock=FixedClock(int(v["timestamp"]))
    )


def test_documented_example_is_stale_today() -> None:
    """The same 2018 example is refused with today's clock: the 5-minute window holds."""
    v = _vector()
    with pytest.raises(SignatureInvalid, match="stale"):
        verify_signature(v["body"].encode(), v["headers"], secret=v["signing_secret"])


def test_edge_of_window() -> None:
    """A request 299 s old passes and one 301 s old does not."""
    v = _vector()
    ts = int(v["timestamp"])
    verify_signature(v["body"].encode(), v["headers"], secret=v["signing_secret"], clock=FixedClock(ts + 299))
    with pytest.raises(SignatureInvalid):
        verify_signature(v["body"].encode(), v["headers"], secret=v["signing_secret"], clock=FixedClock(ts + 301))


def test_tampered_body_is_refused() -> None:
    """One changed byte in the body breaks the signature."""
    v = _vector()
    body = v["body"].replace("roadrunner", "roadrunnex").encode()
    with pytest.raises(SignatureInvalid, match="bad"):
        verify_signature(body, v["headers"], secret=v["signing_secret"], clock=FixedClock(int(v["timestamp"])))


def _interactions() -> int:
    with session_scope(write=False) as session:
        return len(session.exec(select(SlackInteraction)).all())


@pytest.mark.parametrize("case", ["bad", "stale", "missing", "other-secret"])
def test_endpoint_refuses_unsigned_requests(signing_secret: str, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad, stale or missing signatures get 401 in our error shape, a log line, and no recorded click."""
    body = click(SlackAction.approve, "1", user_id=SLACK_IDS[APPROVER])
    headers = sign(body, signing_secret)
    if case == "bad":
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    elif case == "stale":
        headers = sign(body, signing_secret, timestamp=int(time.time()) - 301)
    elif case == "missing":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    else:
        headers = sign(body, "not-" + signing_secret)
    with TestClient(create_app()) as api:
        response = api.post("/slack/interactions", content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    refused = [json.loads(line) for line in capsys.readouterr().err.splitlines() if "request refused" in line]
    assert refused and refused[-1]["path"] == "/slack/interactions" and refused[-1]["error"] == "invalid_signature"
    assert _interactions() == 0


def test_signed_request_is_acknowledged_empty(signing_secret: str) -> None:
    """A correctly signed click is answered 200 with an empty body and recorded once."""
    body = click(SlackAction.approve, "1", user_id=SLACK_IDS[APPROVER])
    with TestClient(create_app()) as api:
        response = api.post("/slack/interactions", content=body, headers=sign(body, signing_secret))
    assert response.status_code == 200
    assert response.content == b""
    assert _interactions() == 1


def test_link_button_is_acknowledged_not_recorded(signing_secret: str) -> None:
    """The "Open app page" link button is acknowledged with 200 and nothing is recorded."""
    body = click(SlackAction.open_app, "", user_id=SLACK_IDS[APPROVER])
    with TestClient(create_app()) as api:
        assert api.post("/slack/interactions", content=body, headers=sign(body, signing_secret)).status_code == 200
    assert _interactions() == 0


def test_without_signing_secret_everything_is_refused(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With SLACK_SIGNING_SECRET unset, Slack requests cannot be verified and are refused with 401."""
    from orchestrator.config import get_settings

    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    get_settings.cache_clear()
    body = click(SlackAction.approve, "1", user_id=SLACK_IDS[APPROVER])
    with TestClient(create_app()) as api:
        response = api.post("/slack/interactions", content=body, headers=sign(body, "anything"))
    assert response.status_code == 401 and "SLACK_SIGNING_SECRET" in response.json()["detail"]
    assert _interactions() == 0


def test_oversized_body_is_refused_before_reading(signing_secret: str) -> None:
    """A body over 1 MB is answered 413 and nothing is recorded."""
    body = b"payload=" + b"x" * (1024 * 1024 + 1)
    with TestClient(create_app()) as api:
        response = api.post("/slack/interactions", content=body, headers=sign(body, signing_secret))
    assert response.status_code == 413 and response.json()["error"] == "too_large"
    assert _interactions() == 0
