"""The orphans page shows each app's step in the hand-over chain, after a real owner-left flow (SCIM)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from orchestrator.events.runner import run_event
from tests.console.helpers import sign_in
from tests.events.helpers import catalogue
from tests.identity.helpers import owner_left_events, scim_call
from tests.identity.test_handover_chain import BOSS, CO, LEAVER, _deadlines, _fire, _provision

if TYPE_CHECKING:
    from fastapi.testclient import TestClient


def _row(html: str, app_id: str) -> str:
    """The table row of `app_id` on the orphans page."""
    found = re.search(rf'<tr><td data-label="App"><a href="/console/apps/{app_id}">.*?</tr>', html, re.S)
    assert found, f"{app_id} is not on the page"
    return found.group(0)


def _step(row: str) -> str:
    found = re.search(r'data-step="([a-z_]*)"', row)
    assert found
    return found.group(1)


def _deadline(row: str, attr: str = "data-deadline") -> datetime:
    found = re.search(rf'{attr}="([^"]+)"', row)
    assert found, row
    return datetime.fromisoformat(found.group(1))


def test_the_chain_step_and_its_deadline_follow_the_flow(client: TestClient, make_token: Callable[..., str]) -> None:
    """Co-owned: listed as taken over. Alone: manager asked until the escalation deadline, then IT's group
    until the grace deadline; the maker who owns nothing sees neither app."""
    scim = make_token("scim", None, "entra")
    boss_id = _provision(client, scim, BOSS)
    leaver_id = _provision(client, scim, LEAVER, manager_id=boss_id)
    _provision(client, scim, CO)
    catalogue("shared-app", owner=LEAVER, co_owners=(CO,))
    catalogue("solo-app", owner=LEAVER, data_class="restricted")
    scim_call(
        client,
        "PATCH",
        f"/Users/{leaver_id}",
        scim,
        {"Operations": [{"op": "Replace", "path": "active", "value": "False"}]},
    )
    [(event_id, _, _, _)] = owner_left_events()
    assert run_event(event_id).status == "handled"
    pending = _deadlines("solo-app")

    sign_in(client, make_token("admin", "it-platform@example.com"))
    html = client.get("/console/orphans").text
    row = _row(html, "solo-app")
    assert _step(row) == "manager_asked" and "Manager asked" in row and BOSS in row
    assert _deadline(row) == pending["owner_handover_escalation"][1]
    assert _deadline(row, "data-grace") == pending["owner_left_grace"][1]
    takeovers = html.split('id="takeovers"')[1]
    assert "shared-app" in takeovers and CO in takeovers and LEAVER in takeovers

    _fire(pending["owner_handover_escalation"][0])
    row = _row(client.get("/console/orphans").text, "solo-app")
    from orchestrator.catalog.policy import get_policy

    it_group = get_policy().for_class("restricted").approver_group.slack_channel
    assert _step(row) == "it_group_asked" and it_group in row
    assert _deadline(row) == pending["owner_left_grace"][1]

    _fire(pending["owner_left_grace"][0])
    assert 'href="/console/apps/solo-app"' not in client.get("/console/orphans").text  # suspended, then sunset

    stranger = make_token("maker", "stranger@example.com")
    other = client.__class__(client.app, raise_server_exceptions=False)
    with other:
        sign_in(other, stranger)
        html = other.get("/console/orphans").text
    assert "solo-app" not in html and "shared-app" not in html


def test_a_suspended_app_shows_the_suspended_step(client: TestClient, make_token: Callable[..., str]) -> None:
    """An orphaned app an admin suspends is listed at the last step, since the suspension."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy
    from orchestrator.db import session_scope

    scim = make_token("scim", None, "okta")
    leaver_id = _provision(client, scim, LEAVER)
    catalogue("solo-app", owner=LEAVER)
    scim_call(client, "DELETE", f"/Users/{leaver_id}", scim)
    [(event_id, _, _, _)] = owner_left_events()
    assert run_event(event_id).status == "handled"
    sign_in(client, make_token("admin", "it-platform@example.com"))
    row = _row(client.get("/console/orphans").text, "solo-app")
    assert _step(row) == "it_group_asked"  # no manager: IT's group at once
    with session_scope() as session:
        app = catalog.get_app(session, "solo-app")
        catalog.apply_action(session, app, Action.suspend, actor="admin", reason="test", policy=get_policy())
    row = _row(client.get("/console/orphans").text, "solo-app")
    assert _step(row) == "suspended" and "Suspended" in row
