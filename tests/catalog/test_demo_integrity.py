"""The demo obeys the lifecycle's invariants: it is built through the real services, its retired app
through a real sunset run; with Slack configured its people get their real Slack ids; its admin approves."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from bench.fake_slack import FakeSlack
from orchestrator.audit import service as audit
from orchestrator.catalog.demo import load_demo, read_catalog
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, Stage
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import get_policy
from orchestrator.credentials.handover import claim_service_credential, on_app_approved
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.db import session_scope
from orchestrator.errors import NotFound
from orchestrator.events.models import Event, EventStatus
from orchestrator.notifications.models import Notification, NotificationStatus
from orchestrator.sunset.models import ArchiveRecord, SunsetRun, SunsetStatus
from tests.helpers.slack_fixtures import configure_slack

RETIRED = "old-standup-notes"


def test_the_retired_demo_app_went_through_a_real_sunset(db_url: str) -> None:
    """No live or claimable credential, a finished sunset run with an archive, no 'claim it' notice pending."""
    with session_scope() as session:
        result = load_demo(session, policy=get_policy(), on_approved=on_app_approved)
    assert result.loaded
    with session_scope() as session:
        app = session.get(MicroApp, RETIRED)
        assert app is not None and app.stage is Stage.retired
        issued = session.exec(select(Credential).where(Credential.app_id == RETIRED)).all()
        assert issued, "the approval issued the app's service credential, as a real approval does"
        assert all(c.status is not CredentialStatus.live for c in issued)
        with pytest.raises(NotFound):
            claim_service_credential(session, app, actor=app.owner_email)
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == RETIRED)).one()
        assert run.status is SunsetStatus.done and run.archive_id is not None
        assert session.exec(select(ArchiveRecord).where(ArchiveRecord.app_id == RETIRED)).all()
        inactive = [a.id for a in session.exec(select(MicroApp)).all() if a.stage not in ACTIVE_STAGES]
        stale = session.exec(
            select(Notification).where(
                col(Notification.app_id).in_(inactive), Notification.status == NotificationStatus.pending
            )
        ).all()
        assert stale == [], [n.text for n in stale]
        assert all(e.status is EventStatus.handled for e in session.exec(select(Event)).all())
        assert audit.verify(session).ok


def test_the_demo_admin_is_an_approver(db_url: str) -> None:
    """The printed token's person approves for at least one data class of the policy."""
    admin = str(read_catalog().admin.email)
    groups = [rules.approver_group for rules in get_policy().data_classes.values()]
    assert any(admin in group.approvers for group in groups)


def test_demo_people_get_their_slack_ids_by_email(
    db_url: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Slack configured, users.lookupByEmail sets each person's id; unknown emails get none."""
    configure_slack(monkeypatch, slack)
    slack.add_user("maria.garcia@example.com", "UREALMARIA")
    with session_scope() as session:
        assert load_demo(session, policy=get_policy()).loaded
    with session_scope(write=False) as session:
        maria = session.get(Person, "maria.garcia@example.com")
        sam = session.get(Person, "sam.lee@example.com")
    assert maria is not None and maria.slack_user_id == "UREALMARIA"
    assert sam is not None and sam.slack_user_id is None, "a made-up id would point at nobody in a real workspace"
    looked_up = {c.get("email") for c in slack.calls("users.lookupByEmail")}
    assert {"maria.garcia@example.com", "sam.lee@example.com"} <= looked_up


def test_the_demo_admin_approves_the_pending_app(client: TestClient) -> None:
    """The first thing a new user tries: approving the demo's pending app with the printed token works."""
    with session_scope() as session:
        result = load_demo(session, policy=get_policy(), on_approved=on_app_approved)
    assert result.token
    headers = {"Authorization": f"Bearer {result.token}"}
    pending = client.get("/api/v1/approvals", headers=headers)
    assert pending.status_code == 200, pending.text
    items = [a for a in pending.json()["items"] if a["status"] == "pending"]
    assert items, "the demo has an approval waiting"
    decided = client.post(f"/api/v1/approvals/{items[0]['id']}/decision", json={"decision": "approve"}, headers=headers)
    assert decided.status_code == 200, decided.text
    with session_scope(write=False) as session:
        app = session.get(MicroApp, items[0]["app_id"])
    assert app is not None and app.stage is Stage.production
