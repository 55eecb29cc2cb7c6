"""Bearer tokens and roles: 401 without a live token, 403 for the wrong role, makers see their own apps only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlmodel import select

from orchestrator.auth.models import ApiToken
from orchestrator.auth.service import hash_token
from orchestrator.catalog.models import Person
from orchestrator.clock import utcnow
from orchestrator.db import get_engine, session_scope
from tests.factories import auth
from tests.http.helpers import MAKER, OTHER, Tokens, register, seed_app


class TestUnauthorized:
    """Requests without a live token are refused with 401 in the error shape."""

    def test_missing_token(self, client: Any) -> None:
        """No Authorization header gives 401 unauthorized and a Bearer challenge."""
        response = client.get("/api/v1/apps")
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized", "detail": "missing bearer token"}
        assert response.headers["www-authenticate"] == "Bearer"

    def test_unknown_token(self, client: Any, tokens: Tokens) -> None:
        """A token that was never issued gives 401."""
        response = client.get("/api/v1/apps", headers=auth(tokens.maker + "x"))
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"

    def test_not_bearer_scheme(self, client: Any, tokens: Tokens) -> None:
        """A token sent under another scheme is not accepted."""
        response = client.get("/api/v1/apps", headers={"Authorization": f"Basic {tokens.admin}"})
        assert response.status_code == 401

    def test_revoked_token(self, client: Any, tokens: Tokens) -> None:
        """A revoked token gives 401."""
        with session_scope() as session:
            row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(tokens.admin))).one()
            row.revoked_at = utcnow()
        assert client.get("/api/v1/apps", headers=tokens.headers("admin")).status_code == 401

    def test_token_of_person_who_left(self, client: Any, tokens: Tokens) -> None:
        """Once its person is inactive, the person's token stops working."""
        with session_scope() as session:
            session.add(Person(email=MAKER, active=False))
        response = client.get("/api/v1/apps", headers=tokens.headers("maker"))
        assert response.status_code == 401
        assert "no longer active" in response.json()["detail"]


def test_tokens_are_stored_hashed(db_url: str, tokens: Tokens) -> None:
    """No column of the token table holds a token in clear; the digest does."""
    with get_engine(db_url).connect() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(text("SELECT * FROM api_token"))]
    assert len(rows) == 4
    for secret in (tokens.maker, tokens.other, tokens.approver, tokens.admin):
        assert not any(secret in cell for row in rows for cell in row)
        assert any(hash_token(secret) in row for row in rows)


class TestForbidden:
    """Authenticated callers whose role or person may not act get 403."""

    def test_maker_registers_for_someone_else(self, client: Any, tokens: Tokens) -> None:
        """A maker cannot register an app owned by another person."""
        response = client.post(
            "/api/v1/apps", json={"name": "X", "owner": OTHER, "data_class": "public"}, headers=tokens.headers("maker")
        )
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"

    def test_maker_registers_as_co_owner(self, client: Any, tokens: Tokens) -> None:
        """A maker may register an app they co-own."""
        body = {"name": "Shared", "owner": OTHER, "co_owners": [MAKER], "data_class": "public"}
        assert client.post("/api/v1/apps", json=body, headers=tokens.headers("maker")).status_code == 201

    def test_co_owner_maker_cannot_transfer(self, client: Any, tokens: Tokens) -> None:
        """Only the owner (or an approver/admin) transfers; a co-owning maker gets 403."""
        app = register(client, tokens.headers("other"), owner=OTHER, co_owners=[MAKER])
        response = client.post(
            f"/api/v1/apps/{app['id']}/owner", json={"owner": MAKER}, headers=tokens.headers("maker")
        )
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"

    def test_admin_and_approver_may_register_for_anyone(self, client: Any, tokens: Tokens) -> None:
        """Approvers and admins register apps on behalf of their owners."""
        for who, name in (("approver", "App A"), ("admin", "App B")):
            body = {"name": name, "owner": OTHER, "data_class": "internal"}
            assert client.post("/api/v1/apps", json=body, headers=tokens.headers(who)).status_code == 201


class TestOwnAppsOnly:
    """A maker sees and acts on their own apps only; other apps do not exist for them."""

    def test_list_is_filtered(self, client: Any, tokens: Tokens) -> None:
        """A maker's list holds their owned and co-owned apps; an approver's holds all."""
        mine = seed_app(name="Mine", owner=MAKER)
        shared = seed_app(name="Shared", owner=OTHER, co_owners=[MAKER])
        theirs = seed_app(name="Theirs", owner=OTHER)

        def ids(who: str) -> set[str]:
            return {a["id"] for a in client.get("/api/v1/apps", headers=tokens.headers(who)).json()["items"]}

        assert ids("maker") == {mine, shared}
        assert ids("other") == {shared, theirs}
        assert ids("approver") == ids("admin") == {mine, shared, theirs}

    def test_maker_without_person_sees_nothing(self, client: Any, make_token: Any) -> None:
        """A maker token bound to no person lists no apps (never all of them)."""
        seed_app(name="Someone's", owner=OTHER)
        token = make_token("maker", None, name="robot")
        response = client.get("/api/v1/apps", headers=auth(token))
        assert response.status_code == 200
        assert response.json()["items"] == []

    def test_others_apps_are_404(self, client: Any, tokens: Tokens) -> None:
        """Show, retire, extension and transfer on someone else's app answer 404, and change nothing."""
        theirs = seed_app(name="Theirs", owner=OTHER)
        headers = tokens.headers("maker")
        calls = [
            client.get(f"/api/v1/apps/{theirs}", headers=headers),
            client.post(f"/api/v1/apps/{theirs}/retire", json={}, headers=headers),
            client.post(f"/api/v1/apps/{theirs}/extension", json={}, headers=headers),
            client.post(f"/api/v1/apps/{theirs}/owner", json={"owner": MAKER}, headers=headers),
        ]
        for response in calls:
            assert response.status_code == 404, response.text
            assert response.json() == {"error": "not_found", "detail": f"no app with id {theirs!r}"}
        shown = client.get(f"/api/v1/apps/{theirs}", headers=tokens.headers("approver")).json()
        assert shown["stage"] == "registered"
        assert [e["action"] for e in shown["timeline"]] == ["app.registered"]

    def test_maker_acts_on_own_app(self, client: Any, tokens: Tokens) -> None:
        """The owner can retire their own app."""
        mine = seed_app(name="Mine", owner=MAKER)
        response = client.post(f"/api/v1/apps/{mine}/retire", json={"reason": "done"}, headers=tokens.headers("maker"))
        assert response.status_code == 202
        assert response.json()["app"]["stage"] == "sunsetting"
