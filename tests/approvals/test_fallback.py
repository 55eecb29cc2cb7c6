"""Without Slack: notifications are log lines, and decisions go through the API and the CLI under the same rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bench.harness import start_api
from bench.slack_requests import APPROVER, APPROVER_2, OWNER, REQUESTER
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp
from orchestrator.cli import build
from orchestrator.db import session_scope
from orchestrator.logs import configure_logging
from orchestrator.notifications.models import Notification
from tests.factories import auth
from tests.helpers.slack import api_token, deliver_all, seeded_request
from tests.helpers.slack_fixtures import configure_slack


@pytest.fixture
def no_slack(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings with no Slack bot token."""
    configure_slack(monkeypatch, None)
    return db_url


def test_notifications_become_log_lines(no_slack: str, capsys: pytest.CaptureFixture[str]) -> None:
    """With no token the approval message is a structured log line and the row is marked logged."""
    configure_logging()  # bind the log handler to this test's captured stderr
    _, approval_id = seeded_request()
    assert deliver_all() == ["logged"]
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    posted = [line for line in lines if line.get("event") == "notification"]
    assert posted and posted[0]["key"] == f"approval:{approval_id}:post" and "Expense Helper" in posted[0]["text"]
    with session_scope(write=False) as session:
        assert {n.status for n in session.exec(select(Notification))} == {"logged"}


def test_api_decision_under_the_same_rules(no_slack: str, client: Any) -> None:
    """Role, owner and requester checks apply to the API; refusals are audited; an approval moves the app on."""
    app_id, approval_id = seeded_request()
    url = f"/api/v1/approvals/{approval_id}/decision"
    maker = api_token("maker", "someone@example.com")
    assert client.post(url, json={"decision": "approve"}, headers=auth(maker)).status_code == 403
    for email in (OWNER, REQUESTER):  # approver role, but they own the app / asked for it
        response = client.post(url, json={"decision": "approve"}, headers=auth(api_token("approver", email)))
        assert response.status_code == 403 and response.json()["error"] == "forbidden"
    approver = api_token("approver", APPROVER)
    rejected = client.post(url, json={"decision": "reject"}, headers=auth(approver))
    assert rejected.status_code == 422 and rejected.json()["detail"][0]["field"] == "reason"
    listed = client.get("/api/v1/approvals", headers=auth(approver)).json()["items"]
    assert [a["id"] for a in listed] == [approval_id]
    decided = client.post(url, json={"decision": "approve", "reason": "looks fine"}, headers=auth(approver))
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    late = client.post(url, json={"decision": "approve"}, headers=auth(api_token("approver", APPROVER_2)))
    assert late.status_code == 409 and late.json()["detail"]["decided_by"] == APPROVER
    assert client.get("/api/v1/approvals", headers=auth(approver)).json()["items"] == []
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None and app.stage == "production"
        refused = session.exec(select(AuditEntry).where(AuditEntry.action == "approval.refused")).all()
        assert len(refused) == 2


def test_cli_lists_and_decides(sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`orchestrator approvals list|approve|reject` work against the running API, with clear errors."""
    configure_slack(monkeypatch, None)
    _, first = seeded_request()
    token = api_token("approver", APPROVER)
    proc, base = start_api(env={"DATABASE_URL": sqlite_url, "BROKER_URL": "memory://"}, log_path=tmp_path / "api.log")
    runner = CliRunner()
    env = {"ORCHESTRATOR_TOKEN": token, "ORCHESTRATOR_URL": base}
    try:
        listed = runner.invoke(build(), ["approvals", "list"], env=env)
        assert listed.exit_code == 0, listed.output
        header, row = listed.output.splitlines()
        assert header.split()[:3] == ["ID", "APP", "CLASS"]
        assert row.split()[:6] == [str(first), "expense-helper", "internal", "promotion", "pending", REQUESTER]
        no_reason = runner.invoke(build(), ["approvals", "reject", str(first)], env=env)
        assert no_reason.exit_code != 0 and "--reason" in no_reason.output
        rejected = runner.invoke(build(), ["approvals", "reject", str(first), "--reason", "no tests"], env=env)
        assert rejected.exit_code == 0, rejected.output
        assert rejected.output.strip() == f"request #{first} for expense-helper: rejected by {APPROVER}"
        again = runner.invoke(build(), ["approvals", "approve", str(first)], env=env)
        assert again.exit_code == 1
        assert f"error: conflict: already decided by {APPROVER} (rejected)" in again.output
        as_json = runner.invoke(build(), ["approvals", "list", "--status", "rejected", "--json"], env=env)
        assert json.loads(as_json.output)["items"][0]["reason"] == "no tests"
    finally:
        proc.stop()
