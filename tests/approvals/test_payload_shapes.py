"""Signed Slack interaction payloads of an unexpected shape: a 400 naming the field, never a 500."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from orchestrator.approvals import interactions
from orchestrator.approvals.messages import REASON_ACTION_ID, REASON_BLOCK_ID, REASON_CALLBACK_ID, SlackAction
from orchestrator.errors import MalformedPayload

SECRET = "slack-signing-secret-for-shapes"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SAMPLES = Path(__file__).parents[1] / "data" / "slack"


def _sample(name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / name).read_text()))


def _button(action_id: str = SlackAction.approve.value, value: str = "7") -> dict[str, Any]:
    payload = _sample("block_actions.button_in_message.json")
    payload["actions"][0].update(action_id=action_id, value=value)
    return payload


def _modal() -> dict[str, Any]:
    payload = _sample("view_submission.modal.json")
    view = payload["view"]
    view["callback_id"] = REASON_CALLBACK_ID
    view["private_metadata"] = json.dumps({"approval_id": 7, "decision": "reject", "channel": "C1", "ts": "1.2"})
    view["state"] = {"values": {REASON_BLOCK_ID: {REASON_ACTION_ID: {"type": "plain_text_input", "value": " no "}}}}
    return payload


def _with(payload: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


ODD_SHAPES = {
    "user-not-object": _with(_button(), "user", "U111"),
    "user-id-number": _with(_button(), "user", {"id": 5}),
    "actions-not-list": _with(_button(), "actions", "approval.approve"),
    "action-not-object": _with(_button(), "actions", ["approval.approve"]),
    "action-value-object": _with(_button(), "actions.0.value", {"id": 7}),
    "container-list": _with(_button(), "container", []),
    "channel-string": _with(_button(), "channel", "C111"),
    "message-number": _with(_button(), "message", 3),
    "user-id-nul": _with(_button(), "user.id", "U\x00"),
    "view-not-object": _with(_modal(), "view", "V1"),
    "view-metadata-object": _with(_modal(), "view.private_metadata", {"approval_id": 7}),
    "no-type": {"user": {"id": "U1"}},
    "not-an-object": ["block_actions"],
}


@pytest.mark.parametrize("payload", list(ODD_SHAPES.values()), ids=list(ODD_SHAPES))
def test_parse_refuses_odd_shapes(payload: Any) -> None:
    """The parser raises MalformedPayload naming where the shape is wrong."""
    with pytest.raises(MalformedPayload) as raised:
        interactions.parse(payload)
    assert raised.value.detail and all(d["field"].startswith("payload.") for d in raised.value.detail)


def test_real_samples_still_parse() -> None:
    """Slack's own samples: foreign buttons and modals are ignored; ours become clicks."""
    assert interactions.parse(_sample("block_actions.button_in_message.json")) is None
    assert interactions.parse(_sample("view_submission.modal.json")) is None
    click = interactions.parse(_button())
    assert click is not None and (click.action, click.approval_id, click.user_id) == ("approval.approve", 7, "U111")
    assert (click.channel, click.message_ts, click.trigger_id) == ("C111", "1678252213.679169", "4916855695380.xxx.yyy")
    modal = interactions.parse(_modal())
    assert modal is not None and (modal.action, modal.approval_id, modal.reason) == ("reject", 7, "no")
    assert interactions.parse({"type": "shortcut", "user": "anything"}) is None


def test_an_approval_id_past_64_bits_is_no_approval() -> None:
    """A button value too large for the database is not an id (the worker answers 'no longer exists')."""
    click = interactions.parse(_button(value=str(2**64)))
    assert click is not None and click.approval_id is None


@pytest.fixture
def signing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slack's signing secret configured."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    get_settings.cache_clear()


def _post(client: Any, form: bytes) -> Any:
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + form, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return client.post("/slack/interactions", content=form, headers=headers)


@pytest.mark.parametrize(
    "payload",
    [ODD_SHAPES["user-not-object"], ODD_SHAPES["actions-not-list"], ODD_SHAPES["view-not-object"], ["x"]],
    ids=["user-not-object", "actions-not-list", "view-not-object", "not-an-object"],
)
def test_signed_odd_shapes_are_400(client: Any, signing_secret: None, payload: Any) -> None:
    """Over HTTP: a correctly signed payload of the wrong shape is a 400 naming the field, not a 500."""
    response = _post(client, ("payload=" + quote(json.dumps(payload))).encode())
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_body"


def test_signed_form_without_payload_is_400(client: Any, signing_secret: None) -> None:
    """A signed form with no payload field is a 400."""
    response = _post(client, b"other=1")
    assert response.status_code == 400, response.text
    assert response.json()["detail"][0]["field"] == "payload"


def test_signed_foreign_button_is_acknowledged(client: Any, signing_secret: None) -> None:
    """A well-formed payload we do not act on is still an empty 200."""
    response = _post(client, ("payload=" + quote(json.dumps(_sample("block_actions.button_in_message.json")))).encode())
    assert response.status_code == 200, response.text


def test_a_unicode_digit_is_not_an_approval_id() -> None:
    """'²' passes str.isdigit() but not int(): it is no approval id, not a crash."""
    click = interactions.parse(_button(value="²"))
    assert click is not None and click.approval_id is None


def test_odd_retry_and_timestamp_headers_are_not_a_500(client: Any, signing_secret: None) -> None:
    """A Unicode-digit timestamp is a bad signature (401); a huge retry number is ignored, not stored."""
    form = ("payload=" + quote(json.dumps(_sample("block_actions.button_in_message.json")))).encode()
    headers = {
        "X-Slack-Request-Timestamp": b"\xb2",
        "X-Slack-Signature": "v0=00",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert client.post("/slack/interactions", content=form, headers=headers).status_code == 401
    ts = str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + form, hashlib.sha256).hexdigest()
    signed = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "X-Slack-Retry-Num": "9" * 40,
        **FORM,
    }
    assert client.post("/slack/interactions", content=form, headers=signed).status_code == 200
