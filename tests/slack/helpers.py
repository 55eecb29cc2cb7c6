"""Builders for the Slack approval tests: seeded apps and requests, signed interaction bodies."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from sqlmodel import Session, select

from orchestrator.approvals.flows import request_approval
from orchestrator.approvals.models import ApprovalKind, ApprovalRequest
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.notifications.delivery import deliver
from orchestrator.notifications.models import Notification, NotificationStatus
from tests.conftest import FIXTURES
from tests.factories import manifest

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


def seed_app(session: Session, *, name: str = "Expense Helper", owner: str = OWNER, in_review: bool = True) -> MicroApp:
    """A registered app (moved to in_review unless told otherwise), its people linked to Slack ids."""
    policy = get_policy()
    app, _ = catalog.register_app(session, parse_manifest(manifest(name=name, owner=owner)), actor=owner, policy=policy)
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


def seeded_request(**kwargs: Any) -> tuple[str, int]:
    """Commit an app and its pending request; returns (app id, approval id)."""
    with session_scope() as session:
        app = seed_app(session)
        approval = open_request(session, app, **kwargs)
        return app.id, approval.id or 0


def api_token(role: str, email: str) -> str:
    """An API token on the configured database (make_token would switch to the parametrised one)."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token

    with session_scope() as session:
        return create_token(session, name=f"{role}-{email}", role=Role(role), person_email=email, actor="test")


def deliver_all(rounds: int = 5) -> list[str]:
    """Run every deliverable notification through the real delivery code (what the worker does)."""
    outcomes: list[str] = []
    for _ in range(rounds):
        with session_scope(write=False) as session:
            ids = session.exec(
                select(Notification.id)
                .where(Notification.status == NotificationStatus.pending)
                .order_by(Notification.id)
            ).all()
        if not ids:
            break
        outcomes += [deliver(i) for i in ids if i is not None]
    return outcomes


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
    return json.loads((FIXTURES / "slack" / name).read_text())


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


def quiet_redis_db(redis_url: str) -> str:
    """A Redis database nobody uses right now, else the session's own.

    Several test sessions may share this Redis; a worker of another session consuming the same
    database would take our tasks (and run them against its own catalog).
    """
    import random

    import redis

    base, _, _ = redis_url.rpartition("/")
    client = redis.Redis.from_url(redis_url)
    busy = {int(c.get("db", 0)) for c in client.client_list()}
    idle = [db for db in random.sample(range(1, 16), 15) if db not in busy]
    # Empty first; leftovers of earlier runs are harmless (every task is idempotent) but add noise.
    idle.sort(key=lambda db: redis.Redis.from_url(f"{base}/{db}").dbsize() > 0)
    return f"{base}/{idle[0]}" if idle else redis_url
