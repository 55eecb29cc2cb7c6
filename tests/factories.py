"""Small builders for test data."""

from __future__ import annotations

from typing import Any, Protocol


class Response(Protocol):
    """What tests read from a test client's answer, whichever HTTP library Starlette's TestClient uses."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def auth(token: str) -> dict[str, str]:
    """Authorization header for a bearer token."""
    return {"Authorization": f"Bearer {token}"}


def manifest(**overrides: Any) -> dict[str, Any]:
    """A valid manifest dict, with overrides."""
    base: dict[str, Any] = {
        "name": "Expense Helper",
        "owner": "maker@example.com",
        "data_class": "internal",
        "description": "Summarises expense reports",
        "repo": "https://github.com/example/expense-helper",
        "connectors": ["google-sheets"],
        "scopes": ["sheets:read"],
        "external_endpoints": [],
        "llm": {"uses_llm": False},
    }
    base.update(overrides)
    return base
