"""API tokens (admin): `GET /api/v1/tokens` lists them, `DELETE /api/v1/tokens/{id}` revokes one.

A revocation is audited and takes effect in every API process as soon as it commits: requests look
their token up in the database, and the introspection endpoint's cache of callers is invalidated
through the access version (`orchestrator.auth.changes`). Token values are never shown again; only
their metadata is listed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from orchestrator.auth.models import ApiToken, Role
from orchestrator.auth.service import list_tokens, principal, revoke_token
from orchestrator.db import session_scope
from orchestrator.http.deps import ReadSession, role_at_least

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])
Admin = Annotated[ApiToken, role_at_least(Role.admin)]
# The id column is a 64-bit integer: larger path values are a 422, not a database error.
TokenId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class TokenRead(BaseModel):
    """An API token's metadata (never its value)."""

    id: int
    name: str
    role: Role
    person_email: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiToken) -> TokenRead:
        """The public view of a token row."""
        assert row.id is not None
        return cls(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            person_email=row.person_email,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


@router.get("", response_model=list[TokenRead])
def get_tokens(
    _admin: Admin,
    session: ReadSession,
    include_revoked: Annotated[bool, Query(description="list revoked tokens too")] = False,
) -> list[TokenRead]:
    """Every live API token (with `include_revoked`, revoked ones too), oldest first."""
    return [TokenRead.of(row) for row in list_tokens(session, include_revoked=include_revoked)]


@router.delete("/{token_id}", response_model=TokenRead)
def delete_token(token_id: TokenId, admin: Admin) -> TokenRead:
    """Revoke a token at once in every process (idempotent: revoking a revoked token changes nothing)."""
    with session_scope() as session:
        row = revoke_token(session, token_id, actor=principal(admin))
    return TokenRead.of(row)
