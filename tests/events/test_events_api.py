"""GET /api/v1/events and POST /api/v1/events/{id}/retry: roles, filters, pagination, re-driving."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from orchestrator.events.registry import load_extra_handlers
from orchestrator.events.runner import run_event
from tests.events.helpers import audit_actions, events
from tests.factories import auth

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

load_extra_handlers("tests.events.probe_handlers")  # test.poison / test.flaky, as a worker loads them


def _emit(type: str) -> str:
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    with session_scope() as session:
        return emit(session, type=type, source="test", app_id="some-app").event.id


@pytest.fixture
def parked(db_url: str) -> list[str]:
    """Two parked events (a poison payload and an unknown type) and one handled event."""
    ids = [_emit("test.poison"), _emit("test.unknown-type")]
    handled = _emit("app.created")
    for event_id in [*ids, handled]:
        run_event(event_id)
    return ids


def test_list_by_status_with_pagination(client: TestClient, make_token: Callable[..., str], parked: list[str]) -> None:
    """Approvers list events by status, newest first, page by page; makers may not."""
    approver = make_token("approver", "approver@example.com")
    assert client.get("/api/v1/events", headers=auth(make_token("maker", "m@example.com"))).status_code == 403
    first = client.get("/api/v1/events?status=parked&limit=1", headers=auth(approver))
    assert first.status_code == 200, first.text
    page = first.json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    second = client.get(f"/api/v1/events?status=parked&limit=1&cursor={page['next_cursor']}", headers=auth(approver))
    assert second.json()["next_cursor"] is None
    listed = [page["items"][0]["id"], second.json()["items"][0]["id"]]
    assert sorted(listed) == sorted(parked)
    assert client.get("/api/v1/events?status=failed", headers=auth(approver)).json()["items"] == []
    one = client.get(f"/api/v1/events/{parked[1]}", headers=auth(approver)).json()
    assert one["status"] == "parked" and "no handler" in one["last_error"]


def test_retry_is_admin_only_and_audited(client: TestClient, make_token: Callable[..., str], parked: list[str]) -> None:
    """An admin re-drives a parked event (fresh attempts, audited); handled or unknown events are refused."""
    admin = make_token("admin", "it@example.com")
    assert (
        client.post(f"/api/v1/events/{parked[0]}/retry", headers=auth(make_token("approver", "a@x.com"))).status_code
        == 403
    )
    response = client.post(f"/api/v1/events/{parked[0]}/retry", headers=auth(admin))
    assert response.status_code == 202, response.text
    [event] = events(id=parked[0])
    assert event.attempts == 0 and event.status.value in ("pending", "enqueued")
    assert [e.data["event_id"] for e in audit_actions() if e.action == "event.retried"] == [parked[0]]
    handled = events(type="app.created")[0].id
    assert client.post(f"/api/v1/events/{handled}/retry", headers=auth(admin)).status_code == 409
    assert client.post("/api/v1/events/nope/retry", headers=auth(admin)).status_code == 404


def test_cli_show_and_relay_once(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`events show` prints an event; `relay --once` publishes what is due; errors exit non-zero."""
    from typer.testing import CliRunner

    from orchestrator.cli import build
    from orchestrator.config import get_settings
    from orchestrator.db import session_scope
    from orchestrator.events.models import Event

    with session_scope() as session:
        session.add(Event(id="e" * 32, type="app.created", source="test", app_id="a", dedup_key="test:relay-once"))
    monkeypatch.setenv("RELAY_PENDING_AFTER_SECONDS", "0.001")
    get_settings.cache_clear()
    runner = CliRunner()
    shown = runner.invoke(build(), ["events", "show", "e" * 32])
    assert shown.exit_code == 0 and '"status": "pending"' in shown.output
    relayed = runner.invoke(build(), ["relay", "--once"])
    assert relayed.exit_code == 0 and "published 1 event(s)" in relayed.output
    assert events(id="e" * 32)[0].status.value == "enqueued"
    missing = runner.invoke(build(), ["events", "show", "nope"])
    assert missing.exit_code == 1 and "no event with id" in missing.output
