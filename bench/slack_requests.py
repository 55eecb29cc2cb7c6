"""What Slack and its people look like to the orchestrator, for the approval benchmark and the tests.

People with their Slack ids and the approval channels, a seeded app with a pending approval request,
and the signed interaction bodies Slack posts (built from recorded Slack payloads in tests/data/slack).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session

from orchestrator.approvals.flows import request_approval
from orchestrator.approvals.models import ApprovalKind, ApprovalRequest
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy

SLACK_PAYLOADS = Path(__file__).resolve().parents[1] / "tests" / "data" / "slack"

OWNER = "maker@example.com"
APPROVER = "approver@example.com"
APPROVER_2 = "it-platform@example.com"
OUTSIDER = "outsider@example.com"
REQUESTER = "reviews@example.com"
SLACK_IDS = {OWNER: "U0MAKER001", APPROVER: "U0APPROV01", APPROVER_2: "U0ITPLAT01", OUTSIDER: "U0OUTSID01"}
CHANNELS = {
    "microapp-approvals": "C0APPROVAL",
    "it-platform-leads": "C0ITLEADS0",
    "microapp-approvals-restricted": "C0RESTRICT",
    "security-leads": "C0SECLEADS",
}


def _manifest(name: str, owner: str) -> dict[str, Any]:
    return {
        "name": name,
        "owner": owner,
        "data_class": "internal",
        "description": "Summarises expense reports",
        "repo": "https://github.com/example/expense-helper",
        "connectors": ["google-sheets"],
        "scopes": ["sheets:read"],
        "external_endpoints": [],
        "llm": {"uses_llm": False},
    }


def seed_app(session: Session, *, name: str = "Expense Helper", owner: str = OWNER, in_review: bool = True) -> MicroApp:
    """A registered app (moved to in_review unless told otherwise), its people linked to Slack ids."""
    policy = get_policy()
    app, _ = catalog.register_app(session, parse_manifest(_manifest(name, owner)), actor=owner, policy=policy)
    for email, user_id in SLACK_IDS.items():
        catalog.ensure_person(session, email).slack_user_id = user_id
    if in_review:
        catalog.apply_action(session, app, Action.submit_for_review, actor=REQUESTER, policy=policy)
    return app


def open_request(
    session: Session, app: MicroApp, *, review: dict[str, Any] | None = None, requested_by: str = REQUESTER
) -> ApprovalRequest:
    """An approval request for `app`, with its message queued and its deadlines scheduled."""
    request, _ = catalog.open_approval(
        session,
        app,
        kind=ApprovalKind.promotion,
        requested_by=requested_by,
        payload={"review": review} if review else {},
    )
    request_approval(session, request.id or 0)
    return request


def sign(body: bytes, secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """Slack's v0 signature headers for `body`."""
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def fixture_payload(name: str) -> dict[str, Any]:
    """A real Slack payload recorded in tests/data/slack."""
    loaded: dict[str, Any] = json.loads((SLACK_PAYLOADS / name).read_text())
    return loaded


def click(action_id: str, value: str, *, user_id: str, channel: str = "C0APPROVAL", ts: str = "1.000001") -> bytes:
    """A real block_actions payload adapted to our button, form-encoded as Slack sends it."""
    payload = fixture_payload("block_actions.button_in_message.json")
    payload["user"] = {"id": user_id, "username": "someone", "team_id": "T0TEST0001"}
    payload["channel"] = {"id": channel}
    payload["container"].update(channel_id=channel, message_ts=ts)
    payload["message"]["ts"] = ts
    payload["actions"][0].update(action_id=action_id, value=value, action_ts=f"{time.time():.6f}")
    return urlencode({"payload": json.dumps(payload)}).encode()


def submission(approval_id: int, decision: str, reason: str, *, user_id: str, channel: str = "C0APPROVAL",
               ts: str = "1.000001") -> bytes:  # fmt: skip
    """A real view_submission payload adapted to our reason modal, form-encoded."""
    from orchestrator.approvals import messages

    payload = fixture_payload("view_submission.modal.json")
    payload["user"] = {"id": user_id, "username": "someone", "team_id": "T0TEST0001"}
    view = payload["view"]
    view["callback_id"] = messages.REASON_CALLBACK_ID
    view["private_metadata"] = json.dumps(
        {"approval_id": approval_id, "decision": decision, "channel": channel, "ts": ts}
    )
    view["state"] = {
        "values": {messages.REASON_BLOCK_ID: {messages.REASON_ACTION_ID: {"type": "plain_text_input", "value": reason}}}
    }
    return urlencode({"payload": json.dumps(payload)}).encode()
