"""`orchestrator deadlines fire ID`: an admin fires a pending deadline now; audited, once only."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select
from typer.testing import CliRunner

from orchestrator.audit.models import AuditEntry
from orchestrator.cli import build
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.events.models import Event
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline, DeadlineStatus


def test_fire_a_pending_deadline_now(db_url: str) -> None:
    """A deadline due in 30 days fires at once: its event is emitted, the firing audited; a second fire is refused."""
    with session_scope() as session:
        row = deadlines.schedule(
            session, kind="expiry", due_at=utcnow() + timedelta(days=30), app_id="quick-try", payload={"x": 1}
        )
        deadline_id = row.id
    assert deadline_id is not None
    runner = CliRunner()
    listed = runner.invoke(build(), ["deadlines", "quick-try"])
    assert listed.exit_code == 0 and str(deadline_id) in listed.output, listed.output

    fired = runner.invoke(build(), ["deadlines", "fire", str(deadline_id), "--reason", "trying sunset"])
    assert fired.exit_code == 0, fired.output
    with session_scope(write=False) as session:
        stored = session.get(Deadline, deadline_id)
        events = session.exec(select(Event).where(Event.dedup_key == deadlines.dedup_key(deadline_id))).all()
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "deadline.fired_by_hand")).all()
    assert stored is not None and stored.status is DeadlineStatus.fired
    assert [e.type for e in events] == ["app.expired"]
    assert len(entries) == 1 and entries[0].app_id == "quick-try" and entries[0].reason == "trying sunset"
    assert entries[0].actor.startswith("cli")

    again = runner.invoke(build(), ["deadlines", "fire", str(deadline_id)])
    assert again.exit_code == 1 and "not pending" in again.output
    missing = runner.invoke(build(), ["deadlines", "fire", "999999"])
    assert missing.exit_code == 1 and "no deadline 999999" in missing.output
