"""Paging through the catalog with its cursors (the codec itself: tests/test_pagination.py)."""

from __future__ import annotations

from orchestrator.catalog import service as catalog
from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope
from orchestrator.pagination import decode_cursor
from tests.factories import manifest


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
        assert decode_cursor(cursor, "apps", parts=1) == (seen[-1],)
    assert pages == 3
    assert seen == sorted(seen) and len(set(seen)) == 5
