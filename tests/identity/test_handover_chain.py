"""The whole chain from a SCIM deactivation: co-owner, else the manager (with a deadline), then IT's group,
then suspension — every step audited — and the leaver's tokens inactive at once."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlmodel import col, select

from orchestrator.events.runner import run_event
from tests.events.helpers import catalogue
from tests.factories import auth
from tests.identity.helpers import owner_left_events, scim_call

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

LEAVER, BOSS, CO = "leaver@example.com", "boss@example.com", "co@example.com"


def _provision(client: TestClient, scim: str, email: str, manager_id: str | None = None) -> str:
    body: dict[str, Any] = {
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ],
        "userName": email,
        "active": True,
        "emails": [{"value": email, "type": "work", "primary": True}],
    }
    if manager_id:
        body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] = {"manager": {"value": manager_id}}
    created = scim_call(client, "POST", "/Users", scim, body)
    assert created.status_code == 201, created.text
    user_id: str = created.json()["id"]
    return user_id


def _deadlines(app_id: str) -> dict[str, Any]:
    from orchestrator.db import session_scope
    from orchestrator.timers.models import Deadline

    with session_scope(write=False) as session:
        rows = session.exec(select(Deadline).where(Deadline.app_id == app_id, Deadline.status == "pending")).all()
        return {row.kind: (row.id, row.due_at) for row in rows}


def _asks(app_id: str) -> list[tuple[str, str]]:
    from orchestrator.audit.models import AuditEntry
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        rows = session.exec(
            select(AuditEntry)
            .where(AuditEntry.action == "owner.handover_asked", AuditEntry.app_id == app_id)
            .order_by(col(AuditEntry.seq))
        ).all()
        return [(row.data["step"], row.data["asked"]) for row in rows]


def _fire(deadline_id: int) -> None:
    from orchestrator.db import session_scope
    from orchestrator.events.models import Event
    from orchestrator.timers import service as deadlines

    with session_scope() as session:
        deadlines.fire(session, [deadline_id])
    with session_scope(write=False) as session:
        event = session.exec(select(Event).where(Event.dedup_key == deadlines.dedup_key(deadline_id))).one()
    assert run_event(event.id).status == "handled"


def _stage(app_id: str) -> tuple[str, str]:
    from orchestrator.catalog.models import MicroApp
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app.stage.value, app.owner_email


def test_scim_deactivation_runs_the_whole_hand_over_chain(client: TestClient, make_token: Callable[..., str]) -> None:
    """Co-owned: promoted. Alone: manager asked with a deadline, then IT's group, then suspended; tokens die."""
    scim = make_token("scim", None, "entra")
    boss_id = _provision(client, scim, BOSS)
    leaver_id = _provision(client, scim, LEAVER, manager_id=boss_id)
    _provision(client, scim, CO)
    catalogue("shared-app", owner=LEAVER, co_owners=(CO,))
    catalogue("solo-app", owner=LEAVER, data_class="restricted")
    leaver_token = make_token("maker", LEAVER)
    assert client.get("/api/v1/apps", headers=auth(leaver_token)).status_code == 200

    disabled = scim_call(
        client,
        "PATCH",
        f"/Users/{leaver_id}",
        scim,
        {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    assert disabled.status_code == 200, disabled.text
    # The event the SCIM call wrote goes through the real handler (as the worker runs it).
    [(event_id, _, _, _)] = owner_left_events()
    assert run_event(event_id).status == "handled"
    assert client.get("/api/v1/apps", headers=auth(leaver_token)).status_code == 401

    assert _stage("shared-app") == ("registered", CO)
    assert _stage("solo-app")[0] == "orphaned"
    assert _asks("solo-app") == [("manager", BOSS)]
    pending = _deadlines("solo-app")
    assert set(pending) == {"owner_left_grace", "owner_handover_escalation"}
    assert pending["owner_handover_escalation"][1] < pending["owner_left_grace"][1]

    _fire(pending["owner_handover_escalation"][0])
    from orchestrator.catalog.policy import get_policy

    it_group = get_policy().for_class("restricted").approver_group.slack_channel
    assert _asks("solo-app") == [("manager", BOSS), ("it_group", it_group)]
    assert _stage("solo-app")[0] == "orphaned"

    _fire(pending["owner_left_grace"][0])
    assert _stage("solo-app")[0] in ("suspended", "sunsetting", "expired")


def test_without_a_manager_it_is_asked_at_once(client: TestClient, make_token: Callable[..., str]) -> None:
    """No manager known: IT's group is the first ask, and no escalation deadline is set."""
    scim = make_token("scim", None, "okta")
    leaver_id = _provision(client, scim, LEAVER)
    catalogue("solo-app", owner=LEAVER)
    scim_call(client, "DELETE", f"/Users/{leaver_id}", scim)
    [(event_id, _, _, _)] = owner_left_events()
    assert run_event(event_id).status == "handled"
    assert [step for step, _ in _asks("solo-app")] == ["it_group"]
    assert set(_deadlines("solo-app")) == {"owner_left_grace"}
