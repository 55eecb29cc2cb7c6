"""The console's operations page (admins): parked events with retry, the pipeline figures."""

from __future__ import annotations

from typing import Any

from orchestrator.events.registry import load_extra_handlers
from orchestrator.events.runner import run_event
from tests.console.helpers import csrf_of, sign_in
from tests.http.helpers import Tokens

load_extra_handlers("tests.events.probe_handlers")  # test.poison, as a worker loads it


def _parked() -> str:
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        event_id = emit(session, type="test.poison", source="test", app_id="some-app").event.id
    run_event(event_id)  # its handler refuses the payload: parked
    return event_id


def test_operations_lists_parked_events_and_retries_them(client: Any, tokens: Tokens) -> None:
    """An admin sees the parked event with its error and re-drives it through the API's retry."""
    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    event_id = _parked()
    sign_in(client, tokens.admin)
    page = client.get("/console/operations")
    assert page.status_code == 200
    assert event_id in page.text and "parked" in page.text
    assert "events parked" in page.text and "Scheduler leader" in page.text
    answer = client.post(f"/console/operations/events/{event_id}/retry", data={"csrf": csrf_of(page.text)})
    assert "queued again" in answer.text
    with session_scope(write=False) as session:
        event = session.get(Event, event_id)
        assert event is not None and event.status.value in ("pending", "enqueued") and event.attempts == 0
    unknown = client.post("/console/operations/events/nope/retry", data={"csrf": csrf_of(answer.text)})
    assert "Not retried" in unknown.text


def test_operations_is_for_admins(client: Any, tokens: Tokens) -> None:
    """Approvers are refused the page and the retry, and do not see the nav entry."""
    event_id = _parked()
    sign_in(client, tokens.approver)
    assert client.get("/console/operations").status_code == 403
    catalog = client.get("/console/").text
    assert 'href="/console/operations"' not in catalog
    answer = client.post(f"/console/operations/events/{event_id}/retry", data={"csrf": csrf_of(catalog)})
    assert "Not retried" in answer.text and "admin" in answer.text
