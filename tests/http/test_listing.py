"""The listing's JSON straight from rows (orchestrator.http.listing) and the short-lived token cache.

The bytes of `GET /api/v1/apps` must stay those of the `AppPage` response model; a token the API
trusts from its cache must stop working at the next request once it is revoked or its person left.
"""

from __future__ import annotations

import time
import warnings
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.auth import changes
from orchestrator.auth.models import ApiToken
from orchestrator.auth.service import hash_token, revoke_token
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import utcnow
from orchestrator.db import reset_engines, session_scope
from orchestrator.http import deps, listing
from orchestrator.http.schemas import AppPage, AppRead
from tests.http.helpers import MAKER, Tokens, seed_app


def _vary_apps() -> None:
    """Apps whose fields take the shapes serialisation could disagree on."""
    seed_app(name="Plain app")
    seed_app(name="Ünïcödé “quoted” \\ app 🚀", owner=MAKER, co_owners=["co@example.com", "zz@example.com"])
    odd = seed_app(name="Odd values")
    with session_scope() as session:
        app = session.get(MicroApp, odd)
        assert app is not None
        app.llm = {"temperature": 1e-05, "max": 1.5e300, "nested": {"list": [1, 2.0, None, True]}, "t": "\u2028"}
        app.approved_at = utcnow().replace(microsecond=0)
        app.next_review_at = utcnow() + timedelta(days=90)
        app.last_used_at = utcnow()
        app.legal_hold = True
        app.stage, app.previous_stage = Stage.expiring, Stage.production
        app.description = "line\nbreak\ttab\x7f"
        session.add(app)


def test_page_bytes_are_the_response_models(client: Any, tokens: Tokens) -> None:
    """GET /api/v1/apps answers, byte for byte, what serialising `AppPage` of the same apps gives."""
    _vary_apps()
    _assert_pages_are_the_response_models(client, tokens)


def test_page_bytes_in_another_session_time_zone(
    client: Any, tokens: Tokens, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL hands timestamps over in the session's time zone; the page still writes them in UTC."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the session time zone is PostgreSQL's")
    monkeypatch.setenv("PGTZ", "America/New_York")  # libpq sets the session's TimeZone from it
    reset_engines()
    _vary_apps()
    _assert_pages_are_the_response_models(client, tokens)


def _assert_pages_are_the_response_models(client: Any, tokens: Tokens) -> None:
    # A value pydantic had to guess how to write would warn (PydanticSerializationUnexpectedValue).
    # Only that: a blanket "error" would also turn a ResourceWarning of an earlier test's garbage into a failure here.
    warnings.filterwarnings("error", category=UserWarning)
    response = client.get("/api/v1/apps", params={"limit": 2}, headers=tokens.headers("admin"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    page = response.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    with session_scope(write=False) as session:
        apps = [session.get(MicroApp, item["id"]) for item in page["items"]]
    expected = AppPage(items=[AppRead.of(a) for a in apps if a], next_cursor=page["next_cursor"])
    assert response.content == expected.model_dump_json().encode()
    # The rest of the catalog, including the odd values, the same way (and the other sort orders).
    for sort in ("id", "name", "expires", "stage", "last_used"):
        rows = client.get("/api/v1/apps", params={"sort": sort}, headers=tokens.headers("admin"))
        with session_scope(write=False) as session:
            apps = [session.get(MicroApp, item["id"]) for item in rows.json()["items"]]
        assert len(apps) == 3
        assert (
            rows.content
            == AppPage(items=[AppRead.of(a) for a in apps if a], next_cursor=None).model_dump_json().encode()
        )


def test_fields_follow_app_read() -> None:
    """The row serialisation has AppRead's fields in AppRead's order (a field added there must be added here)."""
    assert list(listing.AppJson.__annotations__) == list(AppRead.model_fields)
    # The rows' columns carry AppRead's names, in its order (rows are zipped with them).
    assert [column.key for column in listing.COLUMNS] == list(AppRead.model_fields)
    assert [column.key for column in listing.SERVER_COLUMNS] == list(AppRead.model_fields)


def _token_row(token: str) -> ApiToken:
    with session_scope(write=False) as session:
        return session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(token))).one()


def test_revoked_token_stops_at_the_next_request(client: Any, tokens: Tokens, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token the API already trusts is refused at the very next request once its revocation commits."""
    lookups: list[str | None] = []
    real_lookup = deps._lookup

    def counting(bearer: str | None) -> ApiToken:
        lookups.append(bearer)
        return real_lookup(bearer)

    monkeypatch.setattr(deps, "_lookup", counting)
    headers = tokens.headers("approver")
    for _ in range(3):
        assert client.get("/api/v1/apps", headers=headers).status_code == 200
    assert len(lookups) == 1, "the token was looked up in the database on every request, not trusted"
    token_id = _token_row(tokens.approver).id
    assert token_id is not None
    with session_scope() as session:
        revoke_token(session, token_id, actor="test")
    response = client.get("/api/v1/apps", headers=headers)
    assert response.status_code == 401
    assert client.get("/api/v1/apps", headers=tokens.headers("admin")).status_code == 200


def test_change_made_elsewhere_ends_trust_within_the_check_interval(client: Any, tokens: Tokens) -> None:
    """A revocation written by another process (nothing announced to this one) is seen within CHECK_SECONDS.

    Without Redis (these tests) the access version is the database's fingerprint of revocations.
    """
    headers = tokens.headers("approver")
    assert client.get("/api/v1/apps", headers=headers).status_code == 200
    with session_scope() as session:
        row = session.exec(select(ApiToken).where(ApiToken.token_hash == hash_token(tokens.approver))).one()
        row.revoked_at = utcnow()
    started = time.monotonic()
    while client.get("/api/v1/apps", headers=headers).status_code == 200:
        assert time.monotonic() - started < changes.CHECK_SECONDS + 1.0, "a revoked token kept working"
        time.sleep(0.05)


def test_long_non_ascii_names_page_by_name(client: Any, tokens: Tokens) -> None:
    """A name-order cursor holds the name: 200 characters of four-byte UTF-8 still make a cursor the
    next request takes back (it was a 500 when cursors were capped at 400 characters)."""
    names = ["漢" * 120, "漢" * 119 + "字", "𝔘" * 200]
    for number, name in enumerate(names):
        seed_app(id=f"wide-{number}", name=name)
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(5):
        params = {"sort": "name", "limit": 1} | ({"cursor": cursor} if cursor else {})
        response = client.get("/api/v1/apps", params=params, headers=tokens.headers("admin"))
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(names)


def test_lost_connection_is_sqlalchemys_error_and_the_next_page_reads(client: Any, db_url: str) -> None:
    """A connection lost under the page's statement (run on the driver) is invalidated and raised as
    SQLAlchemy's error (so an outage answers 503); the next page takes a new connection."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the page runs on the driver on PostgreSQL only")
    from sqlalchemy import create_engine, text
    from sqlalchemy import exc as sa_exc
    from sqlalchemy.pool import NullPool

    from orchestrator.catalog.service import AppFilter
    from orchestrator.db import get_engine
    from orchestrator.http.errors import database_unreachable

    seed_app(name="Plain app")
    engine = get_engine()
    page = listing.server_page_rows(engine, AppFilter(), None, 51)
    assert page is not None and len(page[0]) == 1
    # From a connection of its own (the pool would hand back the page's): the session whose last
    # statement was the page's, and only it (the API's other threads keep theirs).
    killer = create_engine(db_url, poolclass=NullPool)
    with killer.connect() as connection:
        killed = connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND query LIKE 'SELECT microapp.id, microapp.name%'"
            )
        ).all()
    assert len(killed) == 1
    killer.dispose()
    with pytest.raises(sa_exc.DBAPIError) as raised:
        listing.server_page_rows(engine, AppFilter(), None, 51)
    assert raised.value.connection_invalidated and database_unreachable(raised.value)
    again = listing.server_page_rows(engine, AppFilter(), None, 51)
    assert again is not None and len(again[0]) == 1
