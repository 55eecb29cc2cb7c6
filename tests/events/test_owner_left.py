"""owner.left: from the API, handled by promoting a co-owner or orphaning, and undone by reassignment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from sqlmodel import SQLModel, select

from orchestrator.catalog.models import MicroApp, Person
from orchestrator.clock import utcnow
from orchestrator.events.runner import run_event
from orchestrator.notifications.models import Notification
from orchestrator.timers.models import Deadline
from tests.events.helpers import audit_actions, catalogue, events
from tests.factories import Response, auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _people() -> None:
    from orchestrator.db import session_scope

    with session_scope() as session:
        session.add(Person(email="boss@example.com"))
        session.add(Person(email="leaver@example.com", manager_email="boss@example.com"))
        session.add(Person(email="co@example.com"))
        session.add(Person(email="loner@example.com"))
        session.add(Person(email="other@example.com"))


_Row = TypeVar("_Row", bound=SQLModel)


def _rows(model: type[_Row], **filters: Any) -> list[_Row]:
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        query = select(model)
        for column, value in filters.items():
            query = query.where(getattr(model, column) == value)
        return list(session.exec(query).all())


def _left(client: TestClient, token: str, email: str, key: str | None = None) -> Response:
    headers = {**auth(token), **({"Idempotency-Key": key} if key else {})}
    return client.post(f"/api/v1/people/{email}/left", json={"reason": "left the company"}, headers=headers)


def test_people_left_api_is_admin_only_and_idempotent(client: TestClient, make_token: Callable[..., str]) -> None:
    """Only an admin may report a departure; an Idempotency-Key makes a repeat a duplicate."""
    _people()
    admin, maker = make_token("admin", "it@example.com"), make_token("maker", "maker@example.com")
    assert _left(client, maker, "leaver@example.com").status_code == 403
    assert _left(client, admin, "nobody@example.com").status_code == 404
    first = _left(client, admin, "leaver@example.com", key="hr-123")
    assert first.status_code == 202, first.text
    again = _left(client, admin, "leaver@example.com", key="hr-123")
    assert again.status_code == 200
    assert again.json() == {"event_id": first.json()["event_id"], "duplicate": True}
    [event] = events(type="owner.left")
    assert event.payload["actor"] == "it@example.com"


def test_owner_left_promotes_co_owner_or_orphans(client: TestClient, make_token: Callable[..., str]) -> None:
    """Co-owned apps get the co-owner as owner; the rest are orphaned with a grace deadline and an ask for an owner."""
    _people()
    catalogue("with-co", owner="leaver@example.com", co_owners=("co@example.com",))
    catalogue("alone", owner="leaver@example.com", data_class="restricted")
    catalogue("loner-app", owner="loner@example.com")
    catalogue("co-owned", owner="other@example.com", co_owners=("leaver@example.com", "co@example.com"))
    admin = make_token("admin", "it@example.com")
    event_id = _left(client, admin, "leaver@example.com").json()["event_id"]
    assert run_event(event_id).status == "handled"

    [with_co] = _rows(MicroApp, id="with-co")
    assert (with_co.owner_email, with_co.stage.value) == ("co@example.com", "registered")
    assert "app.owner_transferred" in [e.action for e in audit_actions("with-co")]
    [alone] = _rows(MicroApp, id="alone")
    assert alone.previous_stage is not None
    assert (alone.stage.value, alone.previous_stage.value) == ("orphaned", "registered")
    [grace] = _rows(Deadline, app_id="alone", kind="owner_left_grace")
    assert abs(grace.due_at - (utcnow() + timedelta(days=7))) < timedelta(minutes=5)  # restricted: 7 days
    [co_owned] = _rows(MicroApp, id="co-owned")
    assert co_owned.co_owners == ["co@example.com"]
    [person] = _rows(Person, email="leaver@example.com")
    assert person.active is False and person.left_at is not None
    told = {(n.recipient, n.app_id) for n in _rows(Notification)}
    assert ("co@example.com", "with-co") in told
    assert ("boss@example.com", "alone") in told

    # The same departure reported again (Slack, GitHub): nothing moves twice.
    second = _left(client, admin, "leaver@example.com").json()["event_id"]
    assert run_event(second).status == "handled"
    assert len(_rows(Deadline, app_id="alone", kind="owner_left_grace")) == 1
    assert [e.action for e in audit_actions("alone")].count("lifecycle.orphan") == 1

    # Without a manager the data class's approver group is asked.
    loner_event = _left(client, admin, "loner@example.com").json()["event_id"]
    assert run_event(loner_event).status == "handled"
    assert ("#microapp-approvals", "loner-app") in {(n.recipient, n.app_id) for n in _rows(Notification)}

    # Reassigning the orphan returns it to the stage it was in.
    response = client.post(
        "/api/v1/apps/alone/owner", json={"owner": "co@example.com", "reason": "takes over"}, headers=auth(admin)
    )
    assert response.status_code == 200, response.text
    [alone] = _rows(MicroApp, id="alone")
    assert (alone.owner_email, alone.stage.value) == ("co@example.com", "registered")


def test_owner_left_without_email_is_parked(sqlite_url: str) -> None:
    """An owner.left event without an email can never be handled: it is parked, not retried."""
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        event_id = emit(session, type="owner.left", source="test", payload={}).event.id
    outcome = run_event(event_id)
    assert outcome.status == "parked"
    [event] = events(id=event_id)
    assert event.status.value == "parked" and "without an email" in (event.last_error or "")
