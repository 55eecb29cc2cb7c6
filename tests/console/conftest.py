"""Fixtures for the console tests: role tokens (as the API tests use) and a signed-in client factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.console.helpers import sign_in
from tests.http.helpers import MAKER, OTHER, Tokens


@pytest.fixture
def tokens(make_token: Any) -> Tokens:
    """One token per role, each acting for its own person."""
    return Tokens(
        maker=make_token("maker", MAKER),
        other=make_token("maker", OTHER),
        approver=make_token("approver", "approver@example.com"),
        admin=make_token("admin", "it-platform@example.com"),
    )


@pytest.fixture
def browser_for(client: Any) -> Iterator[Callable[[str], Any]]:
    """`browser_for(token)`: a separate TestClient on the same app, signed in with `token` (own cookies)."""
    from fastapi.testclient import TestClient

    opened: list[Any] = []

    def _open(token: str) -> Any:
        other = TestClient(client.app, raise_server_exceptions=False)
        opened.append(other)
        answer = sign_in(other, token)
        assert answer.status_code == 200, answer.text
        return other

    yield _open
    for other in opened:
        other.close()
