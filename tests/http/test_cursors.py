"""Cursors at the API: each list takes back only its own cursors, and refuses others with 422, not a 500."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.pagination import encode_cursor
from tests.factories import auth


@pytest.mark.parametrize(
    "url, cursor",
    [
        ("/api/v1/events", encode_cursor("apps", "expense-helper")),  # another list's cursor
        ("/api/v1/apps", encode_cursor("events", "2026-12-04T21:00:00+00:00", "abc")),
        ("/api/v1/events", encode_cursor("events", "not-a-time", "abc")),  # tampered position
        ("/api/v1/events", "x" * 5000),  # overlong
        ("/api/v1/events", "%%%"),
    ],
    ids=["apps-cursor-to-events", "events-cursor-to-apps", "events-bad-time", "overlong", "garbage"],
)
def test_foreign_or_broken_cursor_is_422(client: Any, make_token: Any, url: str, cursor: str) -> None:
    """The answer names the cursor parameter and says why; it is never page 1 and never a 500."""
    response = client.get(url, params={"cursor": cursor}, headers=auth(make_token("admin", "it@example.com")))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert body["detail"][0]["field"] == "cursor" and body["detail"][0]["in"] == "query"
    assert "items" not in body
