"""The console's app page, actions, approval inbox, expiring, orphans and audit pages (TestClient)."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.catalog.models import MicroApp
from orchestrator.db import session_scope
from tests.console.helpers import csrf_of, post_form, sign_in
from tests.http.helpers import MAKER, OTHER, Tokens, seed_app


def _app(app_id: str) -> MicroApp:
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app


def _pending(app_id: str) -> list[ApprovalRequest]:
    with session_scope(write=False) as session:
        query = select(ApprovalRequest).where(
            ApprovalRequest.app_id == app_id, ApprovalRequest.status == ApprovalStatus.pending
        )
        return list(session.exec(query).all())


def _ask_extension(client: Any, app_id: str) -> int:
    answer = post_form(
        client,
        f"/console/apps/{app_id}/extend",
        {"days": "10", "reason": "need it"},
        page_url=f"/console/apps/{app_id}",
    )
    assert answer.status_code == 303
    (request,) = _pending(app_id)
    assert request.id is not None
    return request.id


class TestAppPage:
    """One app's page and its actions, with the API's rules."""

    def test_page_shows_manifest_actions_and_timeline(self, client: Any, tokens: Tokens) -> None:
        """The owner sees the app's facts, the forms allowed from its stage and its audit timeline."""
        app_id = seed_app(owner=MAKER, co_owners=[OTHER])
        sign_in(client, tokens.maker)
        page = client.get(f"/console/apps/{app_id}")
        assert page.status_code == 200
        for text in (
            "Expense Helper",
            OTHER,
            "google-sheets",
            "sheets:read",
            "Request extension",
            "Transfer ownership",
            "Retire the app",
            "app.registered",
            "No review yet",
        ):
            assert text in page.text, text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["x-frame-options"] == "DENY"

    def test_maker_forcing_another_apps_url_gets_404_and_nothing_changes(self, client: Any, tokens: Tokens) -> None:
        """Another maker's app is a 404 page, for reading and for acting, exactly as in the API."""
        app_id = seed_app(owner=OTHER)
        sign_in(client, tokens.maker)
        assert client.get(f"/console/apps/{app_id}").status_code == 404
        answer = post_form(client, f"/console/apps/{app_id}/retire", {"reason": "mine now"})
        assert answer.status_code == 404
        assert "Nothing was changed" in answer.text
        assert _app(app_id).stage == "registered"

    def test_forged_csrf_is_refused_and_nothing_changes(self, client: Any, tokens: Tokens) -> None:
        """A form without this session's CSRF token is a 403 page; the app is untouched."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.maker)
        for data in ({}, {"csrf": "forged"}):
            answer = client.post(f"/console/apps/{app_id}/retire", data={**data, "reason": "x"})
            assert answer.status_code == 403
            assert "security token" in answer.text
        assert _app(app_id).stage == "registered"

    def test_retire(self, client: Any, tokens: Tokens) -> None:
        """Retiring through the console moves the app to sunsetting and records the reason."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.maker)
        answer = post_form(client, f"/console/apps/{app_id}/retire", {"reason": "not needed"})
        assert answer.status_code == 303
        page = client.get(answer.headers["location"]).text
        assert "Retirement started" in page and "not needed" in page
        assert _app(app_id).stage == "sunsetting"

    def test_transfer_refusals_are_shown(self, client: Any, tokens: Tokens) -> None:
        """A co-owner maker may not transfer (the API's rule); a bad email is explained; nothing changes."""
        app_id = seed_app(owner=OTHER, co_owners=[MAKER])
        sign_in(client, tokens.maker)
        answer = post_form(
            client, f"/console/apps/{app_id}/transfer", {"owner": MAKER}, page_url=f"/console/apps/{app_id}"
        )
        page = client.get(answer.headers["location"]).text
        assert "only the owner, an approver or an admin can transfer an app" in page
        answer = post_form(
            client, f"/console/apps/{app_id}/transfer", {"owner": "nobody"}, page_url=f"/console/apps/{app_id}"
        )
        assert "Not done" in client.get(answer.headers["location"]).text
        assert _app(app_id).owner_email == OTHER

    def test_extend_then_approve_from_the_inbox(self, client: Any, tokens: Tokens, browser_for: Any) -> None:
        """The owner asks for more time; an approver sees it in the inbox and approves; the timeline shows it."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.maker)
        request_id = _ask_extension(client, app_id)
        approver = browser_for(tokens.approver)
        inbox = approver.get("/console/inbox").text
        assert f"#{request_id}" in inbox and "need it" in inbox
        answer = approver.post(f"/console/inbox/{request_id}", data={"csrf": csrf_of(inbox), "decision": "approve"})
        assert f"Request #{request_id} for Expense Helper: approved." in answer.text
        timeline = client.get(f"/console/apps/{app_id}").text
        assert "approval.decided" in timeline or "approval_decided" in timeline


class TestInbox:
    """The approval inbox: who sees what, reasons, double decisions."""

    def test_maker_has_no_inbox(self, client: Any, tokens: Tokens) -> None:
        """A maker is told the inbox is for approvers (403)."""
        sign_in(client, tokens.maker)
        answer = client.get("/console/inbox")
        assert answer.status_code == 403 and "for approvers" in answer.text
        assert "signed in as a maker" in answer.text and "ask an orchestrator admin" in answer.text
        assert 'href="/console/inbox"' not in client.get("/console/").text

    def test_reject_needs_a_reason_next_to_the_field(self, client: Any, tokens: Tokens, browser_for: Any) -> None:
        """Rejecting without a reason answers 422 with the message by the reason field; nothing is decided."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.maker)
        request_id = _ask_extension(client, app_id)
        approver = browser_for(tokens.approver)
        inbox = approver.get("/console/inbox").text
        answer = approver.post(f"/console/inbox/{request_id}", data={"csrf": csrf_of(inbox), "decision": "reject"})
        assert answer.status_code == 422
        assert f'id="reason-err-{request_id}"' in answer.text and "A reason is required to reject" in answer.text
        assert len(_pending(app_id)) == 1
        answer = approver.post(
            f"/console/inbox/{request_id}", data={"csrf": csrf_of(inbox), "decision": "reject", "reason": "too long"}
        )
        assert "rejected" in answer.text
        assert _pending(app_id) == []

    def test_second_decision_says_who_decided_first(self, client: Any, tokens: Tokens, browser_for: Any) -> None:
        """Two approvers with the same page: the second is told who decided first; the first decision stands."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.maker)
        request_id = _ask_extension(client, app_id)
        first, second = browser_for(tokens.approver), browser_for(tokens.admin)
        form_first = csrf_of(first.get("/console/inbox").text)
        form_second = csrf_of(second.get("/console/inbox").text)
        first.post(f"/console/inbox/{request_id}", data={"csrf": form_first, "decision": "approve"})
        answer = second.post(
            f"/console/inbox/{request_id}", data={"csrf": form_second, "decision": "reject", "reason": "no"}
        )
        assert "already decided by approver@example.com (approved)" in answer.text
        assert "your decision was not recorded" in answer.text
        with session_scope(write=False) as session:
            row = session.get(ApprovalRequest, request_id)
            assert row is not None and (row.status, row.decided_by) == ("approved", "approver@example.com")

    def test_approver_does_not_see_requests_for_their_own_app(self, client: Any, tokens: Tokens) -> None:
        """An approver who owns the app cannot decide it: the request is not in their inbox."""
        app_id = seed_app(owner="approver@example.com")
        with session_scope() as session:
            from orchestrator.catalog import service as catalog
            from orchestrator.catalog.policy import get_policy

            app = session.get(MicroApp, app_id)
            assert app is not None
            catalog.request_extension(
                session, app, actor="approver@example.com", days=5, reason="", policy=get_policy()
            )
        sign_in(client, tokens.approver)
        assert "Nothing waits for you" in client.get("/console/inbox").text


class TestOtherPages:
    """Expiring, orphans, audit."""

    def test_expiring_lists_soonest_first_with_an_extension_button(self, client: Any, tokens: Tokens) -> None:
        """A registered app (sandbox expiry) is listed with a one-click extension request."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.maker)
        page = client.get("/console/expiring", params={"days": 365}).text
        assert f"/console/apps/{app_id}/extend" in page
        answer = client.post(
            f"/console/apps/{app_id}/extend", data={"csrf": csrf_of(page), "back": "/console/expiring?days=365"}
        )
        assert "Extension requested" in answer.text
        assert len(_pending(app_id)) == 1

    def test_orphans_grouped_and_transferred(self, client: Any, tokens: Tokens) -> None:
        """An app whose owner left shows under its former owner; an admin transfers it back to life."""
        from orchestrator.catalog import service as catalog
        from orchestrator.catalog.lifecycle import Action
        from orchestrator.catalog.policy import get_policy

        app_id = seed_app(owner=MAKER)
        with session_scope() as session:
            from orchestrator.catalog.models import Person

            catalog.ensure_person(session, OTHER)
            leaver = session.get(Person, MAKER)
            assert leaver is not None
            leaver.active = False
            session.add(leaver)
            app = session.get(MicroApp, app_id)
            assert app is not None
            catalog.apply_action(session, app, Action.orphan, actor="policy", reason="owner left", policy=get_policy())
        sign_in(client, tokens.admin)
        page = client.get("/console/orphans").text
        assert f"Former owner {MAKER}" in page
        answer = client.post(
            f"/console/apps/{app_id}/transfer", data={"csrf": csrf_of(page), "owner": OTHER, "back": "/console/orphans"}
        )
        assert f"Owner is now {OTHER}." in answer.text
        assert _app(app_id).stage == "registered"

    def test_audit_is_for_admins_and_verifies_and_exports(self, client: Any, tokens: Tokens) -> None:
        """Admins see the trail, verify the chain and export it; approvers are refused."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.approver)
        assert client.get("/console/audit").status_code == 403
        sign_in(client, tokens.admin)
        page = client.get("/console/audit", params={"app_id": app_id, "verify": "1"}).text
        assert "Chain verified" in page and "app.registered" in page
        jsonl = client.get("/console/audit/export.jsonl", params={"app_id": app_id})
        assert jsonl.headers["content-type"].startswith("application/x-ndjson")
        assert '"action": "app.registered"' in jsonl.text
        csv_text = client.get("/console/audit/export.csv", params={"app_id": app_id}).text
        assert csv_text.splitlines()[0].startswith("seq,at,app_id")


class TestAssets:
    """Static assets and the API docs work with no network."""

    def test_docs_use_local_assets(self, client: Any) -> None:
        """/docs and /redoc load their scripts from the package, and those answer."""
        for path in ("/docs", "/redoc"):
            html = client.get(path).text
            assert "cdn" not in html.lower() and "fonts.googleapis" not in html
        html = client.get("/docs").text
        assert "/console/static/vendor/swagger-ui/swagger-ui-bundle.js" in html
        for asset in (
            "vendor/swagger-ui/swagger-ui-bundle.js",
            "vendor/swagger-ui/swagger-ui.css",
            "vendor/redoc/redoc.standalone.js",
            "vendor/htmx/htmx.min.js",
            "console.css",
            "console.js",
        ):
            answer = client.get(f"/console/static/{asset}")
            assert answer.status_code == 200, asset
            assert len(answer.content) > 100

    def test_unknown_static_path_is_404(self, client: Any) -> None:
        """Only shipped files are served (no path traversal)."""
        assert client.get("/console/static/../pages.py").status_code == 404
        assert client.get("/console/static/vendor/nothing.js").status_code == 404

    def test_notification_links_point_to_the_console(self, client: Any) -> None:
        """Slack's "Open app page" and every notification link to the console page of the app."""
        from orchestrator.config import get_settings
        from orchestrator.notifications.delivery import app_url

        assert app_url("expense-helper") == f"{get_settings().public_url.rstrip('/')}/console/apps/expense-helper"
