"""End to end with a real Celery worker on Redis and on RabbitMQ: post → click → decision → Slack message updated."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bench.fake_slack import FakeSlack
from bench.harness import start_worker, wait_until
from bench.slack_requests import APPROVER, APPROVER_2, SLACK_IDS, click, sign
from orchestrator.approvals.messages import SlackAction
from orchestrator.approvals.models import ApprovalRequest
from orchestrator.db import session_scope
from orchestrator.http.app import create_app
from tests.helpers.slack import quiet_redis_db, seeded_request
from tests.helpers.slack_fixtures import configure_slack

pytestmark = [pytest.mark.redis, pytest.mark.slow]
CHANNEL = "C0APPROVAL"


def _wait(predicate: Any, what: str, worker: Any) -> None:
    try:
        wait_until(predicate, timeout=30, what=what)
    except AssertionError as exc:  # say what the worker did
        lines = [
            line
            for line in worker.log().splitlines()
            if "Task " in line or "notification" in line or "Traceback" in line
        ]
        raise AssertionError(f"{exc}\nworker:\n" + "\n".join(lines)[-4000:]) from None


def _message_ts(approval_id: int) -> str | None:
    with session_scope(write=False) as session:
        row = session.get(ApprovalRequest, approval_id)
        return row.message_ts if row else None


@pytest.mark.parametrize(
    ("db_url", "broker_kind"),
    [("sqlite", "redis"), ("postgres", "redis"), ("postgres", "rabbitmq")],
    indirect=["db_url"],
)
def test_click_to_updated_message_through_the_worker(
    db_url: str,
    broker_kind: str,
    redis_url: str,
    slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Two approvers click at once; the worker records one decision, updates the message, and tells the other.

    On RabbitMQ too (the session's vhost), with the quiet Redis database beside it for the locks.
    """
    broker = quiet_redis_db(redis_url)
    if broker_kind == "rabbitmq":
        secret = configure_slack(monkeypatch, slack, broker_url=request.getfixturevalue("amqp_url"), redis_url=broker)
        broker = request.getfixturevalue("amqp_url")
    else:
        secret = configure_slack(monkeypatch, slack, broker_url=broker)
    env = {
        "DATABASE_URL": db_url,
        "BROKER_URL": broker,
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_API_URL": slack.base_url,  # type: ignore[attr-defined]
        "SLACK_SIGNING_SECRET": secret,
    }
    worker = start_worker(env=env, log_path=tmp_path / "worker.log", queues="notifications")
    try:
        _, approval_id = seeded_request()  # committed: its post is queued to the worker
        wait_until(lambda: _message_ts(approval_id) is not None, timeout=30, what="approval message posted")
        ts = _message_ts(approval_id) or ""
        assert [m["ts"] for m in slack.messages(CHANNEL)] == [ts]
        bodies = [
            click(SlackAction.approve, str(approval_id), user_id=SLACK_IDS[who], ts=ts)
            for who in (APPROVER, APPROVER_2)
        ]
        with TestClient(create_app()) as api:
            barrier = threading.Barrier(2)
            codes: list[int] = []

            def send(body: bytes) -> None:
                barrier.wait()
                codes.append(api.post("/slack/interactions", content=body, headers=sign(body, secret)).status_code)

            threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert codes == [200, 200]

        def updated() -> bool:
            return bool(slack.calls("chat.update")) and "Approved* by" in json.dumps(
                slack.messages(CHANNEL)[0]["blocks"]
            )

        _wait(updated, "message updated after the click", worker)
        _wait(lambda: len(slack.ephemerals) == 1, "the later click told", worker)
        with session_scope(write=False) as session:
            decided: Any = session.get(ApprovalRequest, approval_id)
        assert decided.status == "approved"
        [ephemeral] = slack.ephemerals
        assert ephemeral["text"] == f"Already decided by <@{SLACK_IDS[decided.decided_by]}> (approved)."
        assert len(slack.messages(CHANNEL)) == 1  # never a second approval message
        owner_dm = slack.dm_channel_of(SLACK_IDS["maker@example.com"])
        # the decision DM and the "service credential ready" DM (the app asks for scopes)
        wait_until(lambda: len(slack.messages(owner_dm)) == 2, timeout=30, what="the owner's DMs")
        log_before_stop = worker.log()
    finally:
        worker.stop()
    assert "Traceback" not in log_before_stop, log_before_stop[-3000:]
