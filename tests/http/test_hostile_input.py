"""Hostile input at every door: NUL bytes, ids past 64 bits, deep JSON and YAML answer 4xx, never a 500."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.factories import manifest
from tests.http.helpers import Tokens

SLACK_SECRET = "slack-signing-secret-for-edges"
GITHUB_SECRET = "github-webhook-secret-for-edges"
TOO_BIG = str(2**64 + 1)
DEEP_JSON = "[" * 1000 + "]" * 1000
DEEP_YAML = "\n".join(" " * i + "a:" for i in range(500)) + " 1\n"


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack and GitHub secrets configured."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET)
    get_settings.cache_clear()


def _slack_signed(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    ts = str(int(time.time()))
    digest = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}", "Content-Type": content_type}
    return {"content": body, "headers": headers}


def _github_signed(body: bytes, event: str = "push") -> dict[str, Any]:
    signature = "sha256=" + hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": f"edge-{time.time_ns()}",
        "Content-Type": "application/json",
    }
    return {"content": body, "headers": headers}


def _refused(response: Any, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, response.text
    body = dict(response.json())
    assert body["error"] != "internal_error" and "\x00" not in response.text
    return body


@pytest.mark.parametrize("field, value", [("connectors", ["sheets\x00x"]), ("name", "App\x00"), ("team", "t\x07")])
def test_control_characters_in_a_manifest_are_422_naming_the_field(
    client: Any, tokens: Tokens, field: str, value: Any
) -> None:
    """A NUL in any string of a manifest is refused at the door, with the field named."""
    response = client.post("/api/v1/apps", json=manifest(**{field: value}), headers=tokens.headers("maker"))
    body = _refused(response, 422)
    assert any(err["field"].split(".")[0] == field and "control" in err["reason"] for err in body["detail"]), body


def test_control_characters_in_a_yaml_manifest_are_422(client: Any, tokens: Tokens) -> None:
    """The same through the YAML door."""
    text = 'name: App\nowner: maker@example.com\ndata_class: internal\nconnectors: ["a\\0b"]\n'
    response = client.post(
        "/api/v1/apps", content=text, headers={**tokens.headers("maker"), "Content-Type": "application/yaml"}
    )
    body = _refused(response, 422)
    assert body["detail"][0]["field"] == "connectors.0", body


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/apps/" + quote("abc\x00def"),
        "/api/v1/apps?owner=" + quote("a\x00b@example.com"),
        "/api/v1/apps?cursor=" + quote("\x00"),
        "/api/v1/apps/x/reviews?" + quote("lim\x00it") + "=3",
        "/api/v1/events/" + quote("ev\x00"),
    ],
)
def test_nul_in_a_path_or_query_is_400(client: Any, tokens: Tokens, path: str) -> None:
    """A NUL anywhere in the URL is refused before any handler or database sees it."""
    body = _refused(client.get(path, headers=tokens.headers("admin")), 400)
    assert body["error"] == "bad_request" and "control character" in json.dumps(body["detail"])


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", f"/api/v1/reviews/{TOO_BIG}"),
        ("POST", f"/api/v1/approvals/{TOO_BIG}/decision"),
        ("GET", f"/api/v1/reviews/-{TOO_BIG}"),
    ],
)
def test_ids_past_64_bits_are_422(client: Any, tokens: Tokens, method: str, path: str) -> None:
    """An integer id the database cannot hold is a validation error, not an overflow."""
    response = client.request(method, path, json={"decision": "approve"}, headers=tokens.headers("admin"))
    body = _refused(response, 422)
    assert body["detail"][0]["in"] == "path", body


def test_nul_in_a_json_body_of_a_model_endpoint_is_422(client: Any, tokens: Tokens) -> None:
    """A NUL in a JSON string of a typed body is refused naming the field."""
    body = {"decision": "approve", "reason": "ok\x00"}
    response = client.post("/api/v1/approvals/1/decision", json=body, headers=tokens.headers("admin"))
    refused = _refused(response, 422)
    assert refused["detail"][0]["field"] == "reason", refused


def test_deep_json_manifest_is_400(client: Any, tokens: Tokens) -> None:
    """JSON nested a thousand deep is refused by depth, cheaply."""
    response = client.post(
        "/api/v1/apps", content=DEEP_JSON, headers={**tokens.headers("maker"), "Content-Type": "application/json"}
    )
    body = _refused(response, 400)
    assert "deep" in json.dumps(body["detail"])


def test_deep_json_on_a_model_endpoint_is_4xx(client: Any, tokens: Tokens) -> None:
    """A typed body endpoint refuses deep JSON too."""
    deep = '{"decision": "approve", "reason": ' + DEEP_JSON + "}"
    response = client.post(
        "/api/v1/approvals/1/decision",
        content=deep,
        headers={**tokens.headers("admin"), "Content-Type": "application/json"},
    )
    _refused(response, 400, 422)


def test_deep_yaml_manifest_is_400_and_cheap(client: Any, tokens: Tokens) -> None:
    """YAML nested 500 deep is refused on the event stream, well under a second of CPU."""
    started = time.process_time()
    response = client.post(
        "/api/v1/apps", content=DEEP_YAML, headers={**tokens.headers("maker"), "Content-Type": "application/yaml"}
    )
    spent = time.process_time() - started
    body = _refused(response, 400)
    assert "deep" in json.dumps(body["detail"])
    assert spent < 0.5, spent


def test_yaml_aliases_are_refused(client: Any, tokens: Tokens) -> None:
    """Aliases (the billion-laughs shape) are refused outright."""
    text = "a: &x [1, 2]\nb: [*x, *x]\nname: App\n"
    response = client.post(
        "/api/v1/apps", content=text, headers={**tokens.headers("maker"), "Content-Type": "application/yaml"}
    )
    body = _refused(response, 400)
    assert "alias" in json.dumps(body["detail"])


def test_deep_json_webhook_is_400(client: Any, secrets_set: None) -> None:
    """A signed GitHub delivery nested a thousand deep is a 400."""
    _refused(client.post("/webhooks/github", **_github_signed(DEEP_JSON.encode())), 400)


def test_deep_json_slack_event_is_400(client: Any, secrets_set: None) -> None:
    """A signed Slack event nested a thousand deep is a 400."""
    _refused(client.post("/slack/events", **_slack_signed(DEEP_JSON.encode())), 400)


def test_deep_json_slack_interaction_is_400(client: Any, secrets_set: None) -> None:
    """A signed Slack interaction whose payload is nested a thousand deep is a 400."""
    body = ("payload=" + quote('{"type": "block_actions", "x": ' + DEEP_JSON + "}")).encode()
    _refused(client.post("/slack/interactions", **_slack_signed(body, "application/x-www-form-urlencoded")), 400)


@pytest.mark.parametrize("door", ["github", "slack-events"])
def test_nul_in_a_webhook_body_is_400(client: Any, secrets_set: None, door: str) -> None:
    """A NUL escape in a signed delivery (which would be stored or looked up as is) is a 400."""
    body = json.dumps({"type": "event_callback", "event_id": "Ev\x00", "repository": {"full_name": "a\x00"}}).encode()
    if door == "github":
        response = client.post("/webhooks/github", **_github_signed(body))
    else:
        response = client.post("/slack/events", **_slack_signed(body))
    assert "NUL" in json.dumps(_refused(response, 400)["detail"])


@pytest.mark.parametrize("field", ["client_id", "subject_token", "resource"])
def test_nul_in_an_oauth_form_is_400(client: Any, field: str) -> None:
    """The token endpoint refuses a NUL in any form value with RFC 6749's invalid_request."""
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": "a.b.c",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "resource": "expense-helper",
        "client_id": "expense-helper",
    }
    form[field] = form[field] + "\x00"
    response = client.post("/oauth/token", data=form)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request" and "control character" in response.text


@pytest.mark.parametrize("path", ["/api/v1/apps", "/api/v1/events"])
def test_nul_inside_a_hand_made_cursor_is_422(client: Any, tokens: Tokens, path: str) -> None:
    """A cursor decodes to strings the database sees: a NUL hidden inside one is refused, naming `cursor`."""
    from orchestrator.pagination import encode_cursor

    kind = "apps" if path.endswith("apps") else "events"
    parts = ["x\x00"] if kind == "apps" else ["2026-01-01T00:00:00+00:00", "ev\x00"]
    response = client.get(path, params={"cursor": encode_cursor(kind, *parts)}, headers=tokens.headers("admin"))
    body = _refused(response, 422)
    assert body["detail"][0]["field"] == "cursor", body
