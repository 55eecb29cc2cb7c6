"""The console's pages over the real app (TestClient): sign-in, session, CSRF, roles, pages and actions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.catalog.models import MicroApp
from orchestrator.db import session_scope
from tests.console.helpers import csrf_of, post_form, sign_in
from tests.http.helpers import MAKER, OTHER, Tokens, seed_app


def _app(app_id: str) -> MicroApp:
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app


def _approvals(app_id: str) -> list[ApprovalRequest]:
    with session_scope(write=False) as session:
        return list(session.exec(select(ApprovalRequest).where(ApprovalRequest.app_id == app_id)).all())


class TestSignIn:
    """Sign-in with an API token, the session cookie, sign-out."""

    def test_home_redirects_to_console_and_asks_to_sign_in(self, client: Any) -> None:
        """/ leads to the console; without a session the console sends the browser to the sign-in form."""
        root = client.get("/", follow_redirects=False)
        assert (root.status_code, root.headers["location"]) == (307, "/console/")
        page = client.get("/console/", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/console/login?next=%2Fconsole%2F")
        login = client.get(page.headers["location"])
        assert "Sign in to continue." in login.text
        assert 'type="password"' in login.text

    def test_htmx_request_without_session_reloads_the_sign_in_page(self, client: Any) -> None:
        """A filter sent by htmx after the session ended gets HX-Redirect (a whole page), not a fragment."""
        answer = client.get("/console/?q=x", headers={"HX-Request": "true"}, follow_redirects=False)
        assert answer.status_code == 200
        assert answer.headers["hx-redirect"].startswith("/console/login?next=%2Fconsole%2F%3Fq%3Dx")

    def test_sign_in_sets_a_signed_httponly_lax_cookie(self, client: Any, tokens: Tokens) -> None:
        """A good token signs in; the cookie is HttpOnly and SameSite=Lax and does not hold the token."""
        answer = sign_in(client, tokens.admin)
        assert answer.status_code == 200
        assert "<h1>Catalog</h1>" in answer.text
        cookie = next(h for k, h in answer.history[0].headers.multi_items() if k == "set-cookie")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert tokens.admin not in cookie

    def test_bad_token_is_refused_next_to_the_field(self, client: Any) -> None:
        """An unknown token answers 401 with the reason next to the token field."""
        page = client.get("/console/login")
        answer = client.post("/console/login", data={"csrf": csrf_of(page.text), "token": "mao_nope"})
        assert answer.status_code == 401
        assert 'aria-invalid="true"' in answer.text and "unknown or revoked token" in answer.text

    def test_sign_in_without_csrf_is_refused(self, client: Any, tokens: Tokens) -> None:
        """The login form needs its CSRF token too (no login CSRF)."""
        client.get("/console/login")
        answer = client.post("/console/login", data={"token": tokens.admin}, follow_redirects=False)
        assert answer.status_code == 403
        assert client.get("/console/", follow_redirects=False).status_code == 303

    def test_forged_cookie_is_an_anonymous_visitor(self, client: Any, tokens: Tokens) -> None:
        """A cookie whose signature does not hold is ignored: sign in again."""
        sign_in(client, tokens.admin)
        value = client.cookies.get("console_session")
        client.cookies.clear()
        client.cookies.set("console_session", value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
        assert client.get("/console/", follow_redirects=False).status_code == 303

    def test_sign_out(self, client: Any, tokens: Tokens) -> None:
        """Sign-out ends the session (a POST with the CSRF token)."""
        sign_in(client, tokens.admin)
        answer = post_form(client, "/console/logout", {})
        assert answer.status_code == 303
        assert "You are signed out." in client.get(answer.headers["location"]).text
        assert client.get("/console/", follow_redirects=False).status_code == 303

    def test_revoked_token_ends_the_session(self, client: Any, tokens: Tokens) -> None:
        """Revoking the token ends its console session at the next request."""
        sign_in(client, tokens.maker)
        from orchestrator.auth.models import ApiToken
        from orchestrator.auth.service import hash_token, revoke_token

        with session_scope() as session:
            row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(tokens.maker))).one()
            assert row.id is not None
            revoke_token(session, row.id, actor="test")
        answer = client.get("/console/")
        assert "no longer valid" in answer.text


class TestTimeouts:
    """Idle and absolute timeouts, on the controllable clock."""

    @pytest.fixture
    def clock(self, monkeypatch: pytest.MonkeyPatch) -> Any:
        from orchestrator import clock as clock_module

        real = clock_module.utcnow
        state = {"offset": timedelta()}
        monkeypatch.setattr(clock_module, "utcnow", lambda: real() + state["offset"])
        return state

    def test_idle_timeout(self, client: Any, tokens: Tokens, clock: Any) -> None:
        """31 minutes without a request end the session (default 30); activity before that keeps it."""
        sign_in(client, tokens.admin)
        clock["offset"] = timedelta(minutes=25)
        assert client.get("/console/").status_code == 200
        clock["offset"] = timedelta(minutes=50)  # 25 minutes after the last request: still alive
        assert client.get("/console/").status_code == 200
        clock["offset"] = timedelta(minutes=81)
        answer = client.get("/console/")
        assert "Your session ended after 30 minutes without activity." in answer.text

    def test_absolute_timeout(self, client: Any, tokens: Tokens, clock: Any) -> None:
        """However active, a session ends 12 hours after sign-in; a form posted then changes nothing."""
        app_id = seed_app(owner=MAKER)
        sign_in(client, tokens.admin)
        form = csrf_of(client.get(f"/console/apps/{app_id}").text)
        for minutes in range(20, 12 * 60, 20):
            clock["offset"] = timedelta(minutes=minutes)
            assert client.get("/console/", follow_redirects=False).status_code == 200
        clock["offset"] = timedelta(hours=12, minutes=1)
        answer = client.post(f"/console/apps/{app_id}/retire", data={"csrf": form, "reason": "x"})
        assert "12 hours after sign-in" in answer.text
        assert _app(app_id).stage == "registered"


class TestCatalog:
    """The catalog page: visibility, filters, counts, pagination."""

    def test_maker_sees_only_their_apps(self, client: Any, tokens: Tokens) -> None:
        """A maker's catalog lists their apps only, as the API's list does."""
        mine = seed_app(name="Mine App", owner=MAKER)
        theirs = seed_app(name="Their App", owner=OTHER)
        sign_in(client, tokens.maker)
        page = client.get("/console/").text
        assert f"/console/apps/{mine}" in page and f"/console/apps/{theirs}" not in page

    def test_filters_and_counts(self, client: Any, tokens: Tokens) -> None:
        """Text search narrows the table; counts per stage follow the filters."""
        seed_app(name="Expense Helper", description="Summarises expense reports")
        seed_app(name="Holiday Planner", description="Plans holidays")
        sign_in(client, tokens.admin)
        page = client.get("/console/", params={"q": "expense"}).text
        assert "Expense Helper" in page and "Holiday Planner" not in page
        assert "registered: 1" in page
        everything = client.get("/console/").text
        assert "registered: 2" in everything
        none = client.get("/console/", params={"stage": "production"}).text
        assert "No apps to show" in none

    def test_pagination(self, client: Any, tokens: Tokens) -> None:
        """More than a page of apps: a next-page link with a cursor leads to the rest."""
        from orchestrator.http.console import pages

        for n in range(pages.PAGE_SIZE + 3):
            seed_app(name=f"App {n:03d}")
        sign_in(client, tokens.admin)
        first = client.get("/console/").text
        assert 'rel="next"' in first
        link = first.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
        second = client.get(link.replace("&amp;", "&")).text
        assert "app-052" in second and "app-000" not in second

    def test_bad_filter_values_are_explained(self, client: Any, tokens: Tokens) -> None:
        """A date that is not one is reported, not a traceback."""
        sign_in(client, tokens.admin)
        page = client.get("/console/", params={"expiring_before": "soon"})
        assert page.status_code == 200 and "is not a date" in page.text


class TestSort:
    """The catalog's sort orders, across pages."""

    def test_sort_by_name_and_expiry_pages_without_gaps(self, client: Any, tokens: Tokens) -> None:
        """Sorted by name or by expiry (none last), the pages together list every app exactly once, in order."""
        from orchestrator.catalog import service as catalog
        from orchestrator.catalog.lifecycle import Action
        from orchestrator.catalog.policy import get_policy

        names = ["Zeta Tool", "Alpha Tool", "Mid Tool", "Beta Tool", "Omega Tool"]
        ids = [seed_app(name=name) for name in names]
        with session_scope() as session:  # one app without an expiry: it comes last by expiry
            app = session.get(MicroApp, ids[0])
            assert app is not None
            catalog.apply_action(session, app, Action.submit_for_review, actor="t", reason="", policy=get_policy())
            app.expires_at = None
            session.add(app)
        with session_scope(write=False) as session:
            filters = catalog.AppFilter()
            for sort in ("name", "expires"):
                seen: list[MicroApp] = []
                cursor = None
                while True:
                    page, cursor = catalog.list_apps(session, filters, cursor=cursor, limit=2, sort=sort)
                    seen.extend(page)
                    if cursor is None:
                        break
                assert sorted(a.id for a in seen) == sorted(ids)
                if sort == "name":
                    assert [a.name for a in seen] == sorted(names)
                else:
                    assert seen[-1].id == ids[0]
                    expiries = [a.expires_at for a in seen[:-1]]
                    assert expiries == sorted(e for e in expiries if e is not None)
        sign_in(client, tokens.admin)
        page = client.get("/console/", params={"sort": "name"}).text
        assert page.index("Alpha Tool") < page.index("Beta Tool") < page.index("Zeta Tool")
        assert 'value="name" selected' in page
        assert client.get("/console/", params={"sort": "nonsense"}).status_code == 200

    def test_sort_by_stage_and_last_use_pages_without_gaps(self, client: Any, tokens: Tokens) -> None:
        """By stage (lifecycle order) or by last use (most recent first, never used last), ties broken by
        id: pages of two together list every app exactly once, in that order; the console offers both."""
        from orchestrator.catalog import service as catalog
        from orchestrator.catalog.lifecycle import Stage
        from orchestrator.clock import utcnow

        now = utcnow().replace(microsecond=0)
        plan = [  # (stage, last used): equal stages and equal times, so the id tiebreak is what orders them
            (Stage.production, now - timedelta(days=1)),
            (Stage.registered, None),
            (Stage.production, now - timedelta(days=1)),
            (Stage.in_review, now),
            (Stage.retired, None),
            (Stage.registered, now - timedelta(days=9)),
            (Stage.expiring, None),
        ]
        ids = [seed_app(name=f"Sort Tool {n}") for n in range(len(plan))]
        with session_scope() as session:
            for app_id, (stage, used) in zip(ids, plan, strict=True):
                app = session.get(MicroApp, app_id)
                assert app is not None
                app.stage, app.last_used_at = stage, used
                session.add(app)
        rank = list(Stage).index
        expected = {
            "stage": [i for _, i in sorted((rank(st), i) for i, (st, _) in zip(ids, plan, strict=True))],
            "last_used": [
                i
                for *_, i in sorted(
                    (u is None, -(u.timestamp() if u else 0), i) for i, (_, u) in zip(ids, plan, strict=True)
                )
            ],
        }
        with session_scope(write=False) as session:
            for sort, order in expected.items():
                seen: list[str] = []
                cursor = None
                while True:
                    page, cursor = catalog.list_apps(session, catalog.AppFilter(), cursor=cursor, limit=2, sort=sort)
                    seen.extend(a.id for a in page)
                    if cursor is None:
                        break
                assert seen == order, sort
        sign_in(client, tokens.admin)
        for sort, order in expected.items():
            text = client.get("/console/", params={"sort": sort}).text
            assert f'value="{sort}" selected' in text
            positions = [text.index(f"<code>{i}</code>") for i in order]
            assert positions == sorted(positions), sort
        wrong = client.get("/console/", params={"sort": "stage", "cursor": "not-a-cursor"})
        assert wrong.status_code == 200 and "out of date" in wrong.text

    def test_the_api_lists_with_the_same_search_and_sort(self, client: Any, tokens: Tokens) -> None:
        """GET /api/v1/apps takes q and sort too (the console's listing is the API's); a bad sort is a 422."""
        from tests.factories import auth

        for name in ("Zeta Notes", "Alpha Notes", "Other Thing"):
            seed_app(name=name, owner=MAKER)
        answer = client.get("/api/v1/apps", params={"q": "notes", "sort": "name"}, headers=auth(tokens.maker))
        assert [a["name"] for a in answer.json()["items"]] == ["Alpha Notes", "Zeta Notes"]
        assert client.get("/api/v1/apps", params={"sort": "size"}, headers=auth(tokens.maker)).status_code == 422
