"""The event list's page cursor, through list_events: newest first, every event once, garbage refused."""

from __future__ import annotations

import base64

import pytest

from orchestrator.db import session_scope
from orchestrator.errors import ValidationFailed
from orchestrator.events.outbox import emit
from orchestrator.events.service import list_events


def _pages(limit: int) -> tuple[list[str], int]:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        with session_scope(write=False) as session:
            page, cursor = list_events(session, cursor=cursor, limit=limit)
        seen += [event.id for event in page]
        pages += 1
        if cursor is None:
            return seen, pages


def test_pages_visit_every_event_once_newest_first(sqlite_url: str) -> None:
    """Events written in one transaction share a timestamp; the cursor still splits them without loss."""
    with session_scope() as session:
        ids = [emit(session, type="app.created", source="test", app_id=f"app-{i}").event.id for i in range(7)]
    seen, pages = _pages(limit=3)
    assert pages == 3
    assert sorted(seen) == sorted(ids) and len(set(seen)) == 7
    with session_scope(write=False) as session:
        everything, last = list_events(session, limit=100)
    assert last is None and [e.id for e in everything] == seen


def test_a_cursor_is_opaque_url_safe_text(sqlite_url: str) -> None:
    """The next cursor has no padding and only URL-safe characters."""
    with session_scope() as session:
        for i in range(3):
            emit(session, type="app.created", source="test", app_id=f"app-{i}")
    with session_scope(write=False) as session:
        _, cursor = list_events(session, limit=1)
    assert cursor is not None
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        base64.urlsafe_b64encode(b"not a date|abc").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_garbage_is_refused(sqlite_url: str, cursor: str) -> None:
    """A cursor that does not decode to a timestamp and an id is a validation failure on `cursor`."""
    with session_scope(write=False) as session, pytest.raises(ValidationFailed) as caught:
        list_events(session, cursor=cursor)
    assert caught.value.detail[0]["field"] == "cursor"
