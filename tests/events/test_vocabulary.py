"""The event vocabulary: emit speaks only EventType, and every EventType has a handler.

An event type emitted with no handler is parked as poison on every occurrence; these tests make
that a failure here instead of in production.
"""

from __future__ import annotations

import pytest
from sqlmodel import func, select

from bench.slack_requests import APPROVER
from orchestrator import wiring
from orchestrator.approvals.service import Decision, decide
from orchestrator.db import session_scope
from orchestrator.events.models import Event, EventStatus
from orchestrator.events.outbox import emit
from orchestrator.events.registry import HANDLERS, registration_for
from orchestrator.events.runner import run_event
from orchestrator.events.types import EventType
from orchestrator.timers.models import DeadlineKind
from orchestrator.timers.service import KIND_EVENTS
from tests.events.probe_vocabulary import PREFIX as PROBE_PREFIX
from tests.helpers.slack import seeded_request


def test_every_event_type_has_a_handler() -> None:
    """With the wiring installed as every process installs it, no EventType is left without a handler."""
    wiring.install()
    missing = [t.value for t in EventType if t not in wiring.EVENT_HANDLERS or registration_for(t) is None]
    assert missing == [], f"event types with no handler (each event would be parked): {missing}"


def test_every_handled_type_is_an_event_type() -> None:
    """No handler listens for a name outside the vocabulary (a typo would never be called)."""
    wiring.install()
    # The pipeline tests' probe handlers may be registered in this process too; they are not ours.
    unknown = sorted(str(t) for t in HANDLERS if not str(t).startswith(PROBE_PREFIX) and t not in set(EventType))
    assert unknown == []


def test_every_deadline_kind_names_its_event() -> None:
    """Each deadline kind fires an EventType (or, for the probe kind, nothing)."""
    assert set(KIND_EVENTS) == set(DeadlineKind)
    assert {k for k, t in KIND_EVENTS.items() if t is None} == {DeadlineKind.probe}
    assert all(isinstance(t, EventType) for t in KIND_EVENTS.values() if t is not None)


def test_emit_refuses_a_type_outside_the_vocabulary(sqlite_url: str) -> None:
    """A misspelt type raises ValueError and writes nothing; a member (or its value) is stored as the plain value."""
    with session_scope() as session:
        with pytest.raises(ValueError, match="app.creatd"):
            emit(session, type="app.creatd", source="test", app_id="some-app")
        emit(session, type=EventType.app_created, source="test", app_id="some-app", dedup_key="member")
        emit(session, type="app.updated", source="test", app_id="some-app", dedup_key="value")
    with session_scope(write=False) as session:
        rows = {e.dedup_key: e.type for e in session.exec(select(Event))}
    assert rows == {"member": "app.created", "value": "app.updated"}
    assert all(type(t) is str for t in rows.values())


@pytest.mark.parametrize("decision", [Decision.approve, Decision.reject])
def test_a_decision_event_ends_handled(db_url: str, decision: Decision) -> None:
    """approval.decided, run through the real runner, is handled — not parked for want of a handler."""
    _, approval_id = seeded_request()
    with session_scope() as session:
        decide(session, approval_id, decision=decision, actor=APPROVER, via="api", reason="checked it")
    with session_scope(write=False) as session:
        event = session.exec(select(Event).where(Event.type == EventType.approval_decided)).one()
    assert run_event(event.id).status == "handled"
    with session_scope(write=False) as session:
        row = session.get(Event, event.id)
        assert row is not None and row.status == EventStatus.handled and row.last_error is None
        assert (
            session.exec(select(func.count()).select_from(Event).where(Event.status == EventStatus.parked)).one() == 0
        )


def test_a_decision_event_naming_no_decided_request_is_parked(sqlite_url: str) -> None:
    """The handler refuses an approval.decided about a request still pending (or unknown): parked, not retried."""
    _, approval_id = seeded_request()
    with session_scope() as session:
        pending = emit(session, type=EventType.approval_decided, source="test", payload={"approval_id": approval_id})
        unknown = emit(session, type=EventType.approval_decided, source="test", payload={"approval_id": 999999})
    assert run_event(pending.event.id).status == "parked"
    assert run_event(unknown.event.id).status == "parked"
