"""Delivery of notification rows: at most one post across retries, and operator errors that stop."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from bench.fake_slack import FakeSlack
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.db import session_scope
from orchestrator.errors import TransientIntegrationError
from orchestrator.notifications.delivery import deliver
from orchestrator.notifications.models import Notification
from tests.helpers.slack import seeded_request

CHANNEL = "C0APPROVAL"


def _row() -> Notification:
    with session_scope(write=False) as session:
        return session.exec(select(Notification).where(Notification.kind == "approval_request")).one()


def test_retry_after_a_lost_answer_finds_the_post(signing_secret: str, slack: FakeSlack) -> None:
    """Slack posted but every answer was lost; the task's retry finds the message by key instead of posting again."""
    _, approval_id = seeded_request()
    slack.fail("chat.postMessage", status=500, after_effect=True)
    slack.fail("conversations.history", times=2, status=503)  # the in-task checks fail too
    with pytest.raises(TransientIntegrationError):
        deliver(_row().id or 0)
    assert (_row().status, _row().attempts) == ("sending", 1)
    assert deliver(_row().id or 0) == "sent"  # what the Celery retry does
    [message] = slack.messages(CHANNEL)
    assert len(slack.calls("chat.postMessage")) == 1
    assert _row().ts == message["ts"]
    with session_scope(write=False) as session:
        assert session.get(ApprovalRequest, approval_id).message_ts == message["ts"]  # type: ignore[union-attr]


def test_bot_not_in_channel_fails_once_with_a_clear_error(signing_secret: str, slack: FakeSlack) -> None:
    """not_in_channel marks the notification failed with what to do, after a single call and no retry."""
    slack.channels["C0APPROVAL"]["member"] = False
    seeded_request()
    assert deliver(_row().id or 0) == "failed"
    assert deliver(_row().id or 0) == "failed"  # a redelivered task does not try again
    assert len(slack.calls("chat.postMessage")) == 1
    assert "not_in_channel" in (_row().last_error or "") and "/invite" in (_row().last_error or "")


def test_sweep_requeues_what_lost_its_message(sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows left pending (broker down at commit) and expired leases are queued again; a digest not yet due is not."""
    import redis

    from orchestrator.clock import utcnow
    from orchestrator.notifications.models import NotificationKind, NotificationStatus
    from orchestrator.notifications.service import notify, sweep
    from tests.helpers.slack import quiet_redis_db
    from tests.helpers.slack_fixtures import configure_slack

    broker = quiet_redis_db(redis_url)
    configure_slack(monkeypatch, None, broker_url=broker)
    queue = redis.Redis.from_url(broker)
    queue.delete("notifications")
    with session_scope() as session:
        notify(session, to="maker@example.com", text="a")
        stuck = notify(session, to="#microapp-approvals", text="b")
        stuck.status, stuck.lease_until = NotificationStatus.sending, utcnow()
        digest = notify(session, to="maker@example.com", text="", kind=NotificationKind.digest)
        digest.due_at = utcnow() + timedelta(minutes=10)
    queue.delete("notifications")  # as if the broker lost what was sent at commit
    assert sweep(now=utcnow() + timedelta(minutes=1)) == {"notifications": 2, "interactions": 0}
    assert queue.llen("notifications") == 2
    queue.delete("notifications")


def test_decided_while_posting_the_post_loses_its_buttons(
    signing_secret: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A decision committed between rendering the request and recording its post still reaches the message."""
    import json

    from sqlalchemy import update

    from orchestrator.notifications import delivery
    from tests.helpers.slack import deliver_all

    _, approval_id = seeded_request()
    real_send = delivery._send

    def send_then_decide(job, notifier):  # type: ignore[no-untyped-def]
        posted = real_send(job, notifier)
        # The decision's own update found no posted message yet (the race): only the status changes here.
        with session_scope() as session:
            session.execute(
                update(ApprovalRequest).where(ApprovalRequest.id == approval_id).values(status="approved")  # type: ignore[arg-type]
            )
        return posted

    monkeypatch.setattr(delivery, "_send", send_then_decide)
    assert deliver(_row().id or 0) == "sent"
    monkeypatch.setattr(delivery, "_send", real_send)
    deliver_all()
    [message] = slack.messages(CHANNEL)
    blocks = json.dumps(message["blocks"])
    assert '"type": "actions"' not in blocks and "Approved" in blocks
