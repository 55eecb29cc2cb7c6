"""FastAPI dependencies: database sessions, the policy, and the authenticated API token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session

from orchestrator.auth import authenticate, require_role
from orchestrator.db import session_scope
from orchestrator.models import ApiToken, Role
from orchestrator.policy import Policy, get_policy


def read_session() -> Iterator[Session]:
    """A read-only transaction for the request.

    Writes open `session_scope()` inside the handler instead, so the commit happens before the
    response is sent (a yield dependency may finish after it).
    """
    with session_scope(write=False) as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]
PolicyDep = Annotated[Policy, Depends(get_policy)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def current_token(request: Request) -> ApiToken:
    """The API token of the request (401 when missing, unknown or revoked)."""
    with session_scope(write=False) as session:
        token = authenticate(session, _bearer(request))
    request.state.principal = token.person_email or f"token:{token.name}"
    return token


CurrentToken = Annotated[ApiToken, Depends(current_token)]


def role_at_least(role: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets through tokens of `role` or above (403 otherwise)."""

    def _check(token: CurrentToken) -> ApiToken:
        require_role(token, role)
        return token

    return Depends(_check)
