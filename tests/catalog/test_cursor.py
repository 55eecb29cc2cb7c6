"""The catalog's page cursor: opaque, round-trips an app id, and refuses anything it did not issue."""

from __future__ import annotations

import base64

import pytest

from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.errors import ValidationFailed
from tests.factories import manifest


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("app_id", ["expense-helper", "a", "x" * 64, "café-ünïcode"])
def test_round_trip(app_id: str) -> None:
    """decode(encode(id)) is the id, and the cursor is URL-safe without padding."""
    cursor = catalog.encode_cursor(app_id)
    assert catalog.decode_cursor(cursor) == app_id
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        catalog.encode_cursor("expense-helper") + "=",  # padding is never issued
        catalog.encode_cursor("x")[:-1],  # cut short of a whole byte
        _b64(b"before:expense-helper"),  # not our prefix
        _b64(b"after:"),  # our prefix, no id
        _b64(b"\xff\xfe"),  # not text
        "a" * 401,  # longer than any cursor we issue
    ],
)
def test_refuses_what_it_did_not_issue(cursor: str) -> None:
    """Anything else is a 422-style validation failure naming the cursor query parameter."""
    with pytest.raises(ValidationFailed) as caught:
        catalog.decode_cursor(cursor)
    assert caught.value.detail == [{"field": "cursor", "in": "query", "reason": "not a cursor we issued"}]


def test_pages_visit_every_app_once(sqlite_url: str) -> None:
    """Following next cursors from list_apps returns every app once, in id order, then None."""
    with session_scope() as session:
        for i in range(5):
            catalog.register_app(
                session, parse_manifest(manifest(name=f"Cursor App {i}")), actor="test", policy=get_policy()
            )
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        with session_scope(write=False) as session:
            page, cursor = catalog.list_apps(session, catalog.AppFilter(), cursor=cursor, limit=2)
        seen += [app.id for app in page]
        pages += 1
        if cursor is None:
            break
        assert catalog.decode_cursor(cursor) == seen[-1]
    assert pages == 3
    assert seen == sorted(seen) and len(set(seen)) == 5
