"""A console session signed in with a leaver's API token ends at its next request once owner.left is handled."""

from __future__ import annotations

from typing import Any

from orchestrator.catalog.models import Person
from orchestrator.db import session_scope
from orchestrator.events.runner import run_event
from tests.factories import auth

LEAVER = "leaver@example.com"


def test_console_session_ends_at_the_next_request_after_owner_left(
    client: Any, browser_for: Any, make_token: Any
) -> None:
    """Signed in and browsing; the person leaves (the real API and event handler); the next page (and an
    htmx fragment) sends the browser to the sign-in form, and signing in again with that token fails."""
    with session_scope() as session:
        session.add(Person(email=LEAVER))
    token = make_token("approver", LEAVER)
    browser = browser_for(token)
    assert browser.get("/console/", follow_redirects=False).status_code == 200

    admin = make_token("admin", "it@example.com")
    posted = client.post(f"/api/v1/people/{LEAVER}/left", json={"reason": "left"}, headers=auth(admin))
    assert posted.status_code == 202, posted.text
    assert run_event(posted.json()["event_id"]).status == "handled"

    page = browser.get("/console/", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login")
    fragment = browser.get("/console/?q=x", headers={"HX-Request": "true"}, follow_redirects=False)
    assert fragment.headers["hx-redirect"].startswith("/console/login")
    from tests.console.helpers import sign_in

    assert sign_in(browser, token).status_code == 401
