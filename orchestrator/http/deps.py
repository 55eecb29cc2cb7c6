"""FastAPI dependencies: database sessions, the policy, the authenticated API token, log binding."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from orchestrator.auth import changes
from orchestrator.auth.models import ApiToken, Role
from orchestrator.auth.service import authenticate, hash_token, principal, require_role
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.db import session_scope
from orchestrator.logs import bind


def read_session() -> Iterator[Session]:
    """A read-only transaction for the request.

    Writes open `session_scope()` inside the handler instead, so the commit happens before the
    response is sent (a yield dependency may finish after it).
    """
    with session_scope(write=False) as session:
        yield session


ReadSession = Annotated[Session, Depends(read_session)]

# The largest id a BIGINT holds; a bigger one in a path is a 422 here rather than an overflow in the driver.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID, description="a row id (a positive 64-bit integer)")]
PolicyDep = Annotated[Policy, Depends(get_policy)]

# auto_error=False: a missing header is our 401 in our error shape, not FastAPI's 403.
_bearer_scheme = HTTPBearer(auto_error=False, description="An API token from `orchestrator token create`.")


def _lookup(bearer: str | None) -> ApiToken:
    with session_scope(write=False) as session:
        return authenticate(session, bearer)


# How long an authenticated token is trusted without reading the database again. A revocation or a
# person leaving ends that trust sooner: every entry is tied to the access version it was checked
# under (orchestrator.auth.changes), which this process re-reads at most every CHECK_SECONDS and
# which changes at once in the process that made the change.
TOKEN_TRUST_SECONDS = 10.0
_MAX_TRUSTED = 10_000
# digest of a bearer token → (trusted until (monotonic), access version checked under, the token row)
_trusted: dict[str, tuple[float, str, ApiToken]] = {}


async def _authenticated(bearer: str | None) -> ApiToken:
    """The live token of `bearer` (Unauthorized otherwise), from the short-lived cache when it may be.

    The lookup was a second session and transaction on every request (8.5 % of a listing, issue 19).
    Only tokens that authenticated are cached; an unknown, revoked or departed one is looked up each time.
    """
    if not bearer:
        return await run_in_threadpool(_lookup, bearer)
    digest = hash_token(bearer)
    versions = changes.access_version
    # Read before the database: a change committed after this read shows as a new version next time.
    version = versions.current() if versions.fresh() else await run_in_threadpool(versions.current)
    now = time.monotonic()
    entry = _trusted.get(digest)
    if entry is not None and entry[0] > now and version is not None and entry[1] == version:
        return entry[2]
    try:
        token = await run_in_threadpool(_lookup, bearer)
    except Exception:
        _trusted.pop(digest, None)
        raise
    if version is not None:
        if len(_trusted) >= _MAX_TRUSTED:
            _trusted.clear()
        _trusted[digest] = (now + TOKEN_TRUST_SECONDS, version, token)
    return token


def forget_trusted_tokens() -> None:
    """Drop every cached authentication (tests that change tokens behind the API's back)."""
    _trusted.clear()


async def current_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> ApiToken:
    """The API token of the request (401 when missing, unknown, revoked or its person has left).

    Async on purpose: binding the principal here, in the request's own context, puts it on every
    later log line of the request (a sync dependency would bind it in a throwaway thread context).
    """
    bearer = credentials.credentials.strip() if credentials and credentials.credentials else None
    token = await _authenticated(bearer)
    request.state.principal = principal(token)
    bind(actor=request.state.principal)
    return token


CurrentToken = Annotated[ApiToken, Depends(current_token)]


def role_at_least(role: Role) -> Any:
    """A `Depends` that lets through tokens of `role` or above (403 otherwise).

    Use as `token: Annotated[ApiToken, role_at_least(Role.approver)]` or in `dependencies=[...]`.
    """

    async def _check(token: CurrentToken) -> ApiToken:
        require_role(token, role)
        return token

    return Depends(_check)


async def bind_path_ids(request: Request) -> None:
    """Bind the app id of the path (if any) to every log line of the request, before anything runs.

    Middleware runs before routing and cannot see path parameters; a router-level dependency runs
    first among the route's dependencies and in the request's own context.
    """
    app_id = request.path_params.get("app_id")
    if app_id:
        bind(app_id=app_id)
