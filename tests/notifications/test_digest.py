"""Flood control: many notifications to one person within the window become one digest message."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from bench.fake_slack import FakeSlack
from bench.slack_requests import APPROVER, OWNER, SLACK_IDS
from orchestrator.db import session_scope
from orchestrator.notifications.delivery import deliver
from orchestrator.notifications.models import Notification, NotificationKind
from orchestrator.notifications.service import notify
from tests.helpers.slack import deliver_all


def _digests() -> list[Notification]:
    with session_scope(write=False) as session:
        return list(session.exec(select(Notification).where(Notification.kind == NotificationKind.digest)).all())


def _send_due_digests() -> list[str]:
    out = []
    for digest in _digests():
        assert digest.id is not None and digest.due_at is not None
        out.append(deliver(digest.id, now=digest.due_at + timedelta(seconds=1)))
    return out


@pytest.mark.parametrize("count", [8, 300])
def test_burst_to_one_person_is_one_digest(
    sqlite_url: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch, count: int
) -> None:
    """An owner of many apps notified in one go gets a single digest message, not one per app."""
    from tests.helpers.slack_fixtures import configure_slack

    configure_slack(monkeypatch, slack)
    with session_scope() as session:
        for i in range(count):
            notify(session, to=OWNER, text=f"app-{i} expires in 7 days", app_id=f"app-{i}")
    outcomes = deliver_all(rounds=1)
    assert outcomes == ["held"] * count
    assert slack.messages(slack.dm_channel_of(SLACK_IDS[OWNER])) == []
    [digest] = _digests()
    assert deliver(digest.id or 0) == "not_due"  # it waits for the end of its window
    assert _send_due_digests() == ["sent"]
    [message] = slack.messages(slack.dm_channel_of(SLACK_IDS[OWNER]))
    assert f"{count} updates" in message["text"]
    assert "app-0 expires" in json.dumps(message["blocks"])
    with session_scope(write=False) as session:
        statuses = {
            n.status for n in session.exec(select(Notification).where(Notification.kind == NotificationKind.notice))
        }
    assert statuses == {"digested"}
    assert _send_due_digests() == ["sent"]  # delivered once; a repeat does nothing
    assert len(slack.messages(slack.dm_channel_of(SLACK_IDS[OWNER]))) == 1


def test_trickle_sends_up_to_threshold_then_digests(
    sqlite_url: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first `digest_threshold` messages of the window go out alone; the rest wait for the digest."""
    from tests.helpers.slack_fixtures import configure_slack

    configure_slack(monkeypatch, slack)
    outcomes = []
    for i in range(7):
        with session_scope() as session:
            row = notify(session, to=OWNER, text=f"update {i}")
        outcomes.append(deliver(row.id or 0))
    assert outcomes == ["sent"] * 5 + ["held", "held"]
    _send_due_digests()
    texts = [m["text"] for m in slack.messages(slack.dm_channel_of(SLACK_IDS[OWNER]))]
    assert texts[:5] == [f"update {i}" for i in range(5)]
    assert texts[5:] == ["2 updates in the last 10 minutes"]


def test_different_people_are_counted_apart(sqlite_url: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four messages each to two people stay under the threshold of each: eight direct messages."""
    from tests.helpers.slack_fixtures import configure_slack

    configure_slack(monkeypatch, slack)
    with session_scope() as session:
        for i in range(4):
            notify(session, to=OWNER, text=f"owner {i}")
            notify(session, to=APPROVER, text=f"approver {i}")
    assert deliver_all() == ["sent"] * 8
    assert _digests() == []
