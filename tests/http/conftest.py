"""Fixtures for the catalog API tests: a token per role."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.helpers import MAKER, OTHER, Tokens


@pytest.fixture
def tokens(make_token: Any) -> Tokens:
    """One token per role, each acting for its own person."""
    return Tokens(
        maker=make_token("maker", MAKER),
        other=make_token("maker", OTHER),
        approver=make_token("approver", "approver@example.com"),
        admin=make_token("admin", "admin@example.com"),
    )
