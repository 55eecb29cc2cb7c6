"""Exactly one decision under concurrency, on PostgreSQL: the service, and the real API over HTTP."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bench.harness import start_api
from bench.slack_requests import APPROVER, APPROVER_2
from orchestrator.approvals.service import Decision, Result, decide
from orchestrator.audit.models import AuditEntry
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from tests.factories import auth
from tests.helpers.slack import api_token, seeded_request

pytestmark = pytest.mark.postgres


def test_concurrent_decisions_in_the_service(pg_url: str) -> None:
    """Eight simultaneous approve/reject attempts by two approvers: one decision, the rest learn who decided."""
    _, approval_id = seeded_request()
    barrier = threading.Barrier(8)

    def attempt(i: int) -> Any:
        actor = APPROVER if i % 2 else APPROVER_2
        decision = Decision.approve if i % 3 else Decision.reject
        barrier.wait()
        with session_scope() as session:
            return decide(session, approval_id, decision=decision, actor=actor, via="test", reason="race")

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    winners = [o for o in outcomes if o.result is Result.decided]
    assert len(winners) == 1
    decider = winners[0].approval.decided_by
    others = [o for o in outcomes if o is not winners[0]]
    assert all(o.result is Result.already_decided and o.approval.decided_by == decider for o in others)
    assert all(o.message.startswith("Already decided by <@") for o in others)  # the decider, as a Slack mention
    with session_scope(write=False) as session:
        assert len(session.exec(select(AuditEntry).where(AuditEntry.action == "approval.decided")).all()) == 1
        assert len(session.exec(select(Event).where(Event.type == "approval.decided")).all()) == 1


def test_concurrent_decisions_over_http(pg_url: str, tmp_path: Path) -> None:
    """Two approvers deciding at once through the running API: one 200, the others 409 naming the decider."""
    _, approval_id = seeded_request()
    tokens = [api_token("approver", APPROVER), api_token("approver", APPROVER_2)]
    proc, base = start_api(env={"DATABASE_URL": pg_url, "BROKER_URL": "memory://"}, log_path=tmp_path / "api.log")
    try:
        barrier = threading.Barrier(6)

        def attempt(i: int) -> httpx.Response:
            barrier.wait()
            return httpx.post(
                f"{base}/api/v1/approvals/{approval_id}/decision",
                json={"decision": "approve"},
                headers=auth(tokens[i % 2]),
                timeout=30,
            )

        with ThreadPoolExecutor(6) as pool:
            responses = list(pool.map(attempt, range(6)))
    finally:
        proc.stop()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409, 409, 409, 409], [r.text for r in responses]
    decider = next(r.json()["decided_by"] for r in responses if r.status_code == 200)
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"] == "conflict"
            assert r.json()["detail"]["decided_by"] == decider
            assert r.json()["detail"]["message"] == f"already decided by {decider} (approved)"
