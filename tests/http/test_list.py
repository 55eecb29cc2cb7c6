"""Listing the catalog: cursor pagination and filters."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from tests.http.helpers import MAKER, OTHER, Tokens, seed_app


def _ids(client: Any, tokens: Tokens, **params: Any) -> list[str]:
    response = client.get("/api/v1/apps", params=params, headers=tokens.headers("admin"))
    assert response.status_code == 200, response.text
    return [a["id"] for a in response.json()["items"]]


class TestPagination:
    """The cursor walks the whole catalog in id order, page by page."""

    def test_cursor_walks_all_pages_without_overlap(self, client: Any, tokens: Tokens) -> None:
        """23 apps at 5 per page: 5 pages, every app exactly once, in order, and no cursor after the last."""
        seeded = sorted(seed_app(name=f"App {i:02d}") for i in range(23))
        seen: list[str] = []
        pages = 0
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/apps", params=params, headers=tokens.headers("admin")).json()
            pages += 1
            assert len(page["items"]) == (5 if pages < 5 else 3)
            seen.extend(a["id"] for a in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert pages == 5
        assert seen == seeded

    def test_exact_multiple_ends_without_empty_page(self, client: Any, tokens: Tokens) -> None:
        """When the last page is full, it carries no cursor (no empty extra page)."""
        for i in range(4):
            seed_app(name=f"App {i}")
        first = client.get("/api/v1/apps", params={"limit": 2}, headers=tokens.headers("admin")).json()
        second = client.get(
            "/api/v1/apps", params={"limit": 2, "cursor": first["next_cursor"]}, headers=tokens.headers("admin")
        ).json()
        assert len(second["items"]) == 2
        assert second["next_cursor"] is None

    def test_pagination_respects_maker_visibility(self, client: Any, tokens: Tokens) -> None:
        """A maker paging through sees only their apps, all of them."""
        mine = sorted(seed_app(name=f"Mine {i}", owner=MAKER) for i in range(5))
        for i in range(5):
            seed_app(name=f"Theirs {i}", owner=OTHER)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/apps", params=params, headers=tokens.headers("maker")).json()
            seen.extend(a["id"] for a in page["items"])
            if not (cursor := page["next_cursor"]):
                break
        assert seen == mine

    @pytest.mark.parametrize(
        "cursor",
        [
            "!!not-base64!!",
            "abc",  # decodes to bytes that are not a cursor
            base64.urlsafe_b64encode(b"expense-helper").decode(),  # an id without our prefix
            base64.urlsafe_b64encode(b"after:").decode(),  # our prefix, no id
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),  # not UTF-8
            "x" * 1201,
        ],
    )
    def test_bad_cursor_is_422(self, client: Any, tokens: Tokens, cursor: str) -> None:
        """A cursor we did not issue is refused with 422 naming the cursor parameter."""
        response = client.get("/api/v1/apps", params={"cursor": cursor}, headers=tokens.headers("admin"))
        assert response.status_code == 422
        body = response.json()
        assert body["error"] == "validation_error"
        assert body["detail"][0]["field"] == "cursor"

    @pytest.mark.parametrize("limit", ["0", "501", "ten"])
    def test_bad_limit_is_422(self, client: Any, tokens: Tokens, limit: str) -> None:
        """limit must be an integer from 1 to 500."""
        response = client.get("/api/v1/apps", params={"limit": limit}, headers=tokens.headers("admin"))
        assert response.status_code == 422
        assert response.json()["detail"][0] | {"reason": ""} == {"field": "limit", "in": "query", "reason": ""}


class TestFilters:
    """stage, owner, data_class and expiring_before narrow the list, alone or together."""

    def test_stage(self, client: Any, tokens: Tokens) -> None:
        """Only apps in the given stage are listed."""
        keep = seed_app(name="Stays")
        gone = seed_app(name="Goes")
        with session_scope() as session:
            app = catalog.get_app(session, gone)
            catalog.apply_action(session, app, Action.retire, actor="test", policy=get_policy())
        assert _ids(client, tokens, stage="sunsetting") == [gone]
        assert _ids(client, tokens, stage="registered") == [keep]
        assert _ids(client, tokens, stage="production") == []

    def test_owner_matches_owner_and_co_owner(self, client: Any, tokens: Tokens) -> None:
        """owner= matches apps the person owns or co-owns, case-insensitively."""
        owned = seed_app(name="Owned", owner=MAKER)
        co_owned = seed_app(name="Co", owner=OTHER, co_owners=[MAKER])
        seed_app(name="Unrelated", owner=OTHER)
        assert _ids(client, tokens, owner=MAKER.upper()) == sorted([owned, co_owned])

    def test_owner_filter_is_not_a_wildcard(self, client: Any, tokens: Tokens) -> None:
        """LIKE metacharacters in owner= are taken literally."""
        seed_app(name="Owned", owner=MAKER)
        assert _ids(client, tokens, owner="%") == []
        assert _ids(client, tokens, owner="maker@example.co_") == []

    def test_data_class(self, client: Any, tokens: Tokens) -> None:
        """Only apps of the given data class are listed."""
        public = seed_app(name="Pub", data_class="public")
        seed_app(name="Reg", data_class="regulated")
        assert _ids(client, tokens, data_class="public") == [public]

    def test_expiring_before(self, client: Any, tokens: Tokens) -> None:
        """Apps whose expiry is before the given time are listed; apps without expiry never are."""
        soon, later, never = seed_app(name="Soon"), seed_app(name="Later"), seed_app(name="Never")
        now = utcnow()
        with session_scope() as session:
            for app_id, expires in ((soon, now + timedelta(days=3)), (later, now + timedelta(days=30)), (never, None)):
                app = session.get(MicroApp, app_id)
                assert app is not None
                app.expires_at = expires
                session.add(app)
        cutoff = (now + timedelta(days=10)).isoformat()
        assert _ids(client, tokens, expiring_before=cutoff) == [soon]
        date_only = (now + timedelta(days=400)).date().isoformat()
        assert _ids(client, tokens, expiring_before=date_only) == sorted([soon, later])

    def test_combined_filters(self, client: Any, tokens: Tokens) -> None:
        """Filters combine with AND."""
        hit = seed_app(name="Hit", owner=MAKER, data_class="restricted")
        seed_app(name="Wrong class", owner=MAKER, data_class="public")
        seed_app(name="Wrong owner", owner=OTHER, data_class="restricted")
        assert _ids(client, tokens, owner=MAKER, data_class="restricted", stage="registered") == [hit]

    @pytest.mark.parametrize(
        ("param", "value"), [("stage", "nowhere"), ("data_class", "secret"), ("expiring_before", "next tuesday")]
    )
    def test_bad_filter_is_422(self, client: Any, tokens: Tokens, param: str, value: str) -> None:
        """An unknown stage or data class, or an unparseable date, is a 422 naming the parameter."""
        response = client.get("/api/v1/apps", params={param: value}, headers=tokens.headers("admin"))
        assert response.status_code == 422
        assert response.json()["detail"][0]["field"] == param
        assert response.json()["detail"][0]["in"] == "query"
