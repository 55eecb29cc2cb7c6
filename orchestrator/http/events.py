"""Event routes: list events by status, re-drive one, and report that a person left.

- `GET  /api/v1/events?status=failed` (approver or admin): newest first, cursor pagination.
- `GET  /api/v1/events/{id}` (approver or admin).
- `POST /api/v1/events/{id}/retry` (admin): a failed, parked or stuck event goes round again.
- `POST /api/v1/people/{email}/left` (admin; for HR/IdP integrations): emits `owner.left`,
  deduplicated on the `Idempotency-Key` header when given.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from orchestrator.auth.models import Role
from orchestrator.auth.service import principal
from orchestrator.catalog.models import Person
from orchestrator.db import session_scope
from orchestrator.errors import NotFound
from orchestrator.events.models import EventStatus
from orchestrator.events.outbox import emit
from orchestrator.events.publisher import publish_after_commit
from orchestrator.events.service import describe_event, get_event, list_events, retry_event
from orchestrator.events.types import EventType
from orchestrator.http.deps import CurrentToken, ReadSession, role_at_least
from orchestrator.http.schemas import InputBody
from orchestrator.logs import get_logger

router = APIRouter(tags=["events"])
log = get_logger(__name__)


class EventPage(BaseModel):
    """One page of events and the cursor of the next."""

    items: list[dict[str, Any]]
    next_cursor: str | None


class Accepted(BaseModel):
    """An event was stored (or had been, under the same idempotency key)."""

    event_id: str
    duplicate: bool


class LeftBody(InputBody):
    """Why the person is recorded as gone."""

    reason: str = Field(default="", max_length=2000)


@router.get("/api/v1/events", response_model=EventPage, dependencies=[role_at_least(Role.approver)])
def events(
    session: ReadSession,
    status: EventStatus | None = None,
    type: str | None = None,
    app_id: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> EventPage:
    """Events, newest first; `status=failed` lists what needs an operator."""
    rows, next_cursor = list_events(session, status=status, type=type, app_id=app_id, cursor=cursor, limit=limit)
    return EventPage(items=[describe_event(e) for e in rows], next_cursor=next_cursor)


@router.get("/api/v1/events/{event_id}", dependencies=[role_at_least(Role.approver)])
def event(event_id: str, session: ReadSession) -> dict[str, Any]:
    """One event with its status, attempts and last error."""
    return describe_event(get_event(session, event_id))


@router.post("/api/v1/events/{event_id}/retry", status_code=202, dependencies=[role_at_least(Role.admin)])
def retry(event_id: str, token: CurrentToken) -> dict[str, Any]:
    """Re-drive a failed, parked or stuck event with a fresh attempt budget."""
    with session_scope() as session:
        row = retry_event(session, event_id, actor=principal(token))
        body = describe_event(row)
    publish_after_commit([event_id])
    return body


def _left_dedup_key(email: str, idempotency_key: str) -> str:
    # Scoped by person: a key reused for someone else must not answer "duplicate" and drop their leave.
    return "api:owner.left:" + hashlib.sha256(f"{email}\n{idempotency_key}".encode()).hexdigest()


@router.post(
    "/api/v1/people/{email}/left",
    status_code=202,
    response_model=Accepted,
    responses={200: {"model": Accepted}},
    dependencies=[role_at_least(Role.admin)],
)
def person_left(
    email: str,
    token: CurrentToken,
    body: LeftBody | None = None,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """Record that a person left the company: their apps go to a co-owner or become orphaned."""
    email = email.strip().lower()
    actor = principal(token)
    with session_scope() as session:
        if session.get(Person, email) is None:
            raise NotFound(f"no person with email {email!r}")
        emitted = emit(
            session,
            type=EventType.owner_left,
            source="api",
            payload={"email": email, "actor": actor, "reason": (body.reason if body else "") or f"{email} left"},
            dedup_key=_left_dedup_key(email, idempotency_key) if idempotency_key else None,
        )
        answer = Accepted(event_id=emitted.event.id, duplicate=emitted.duplicate)
    return JSONResponse(answer.model_dump(), status_code=200 if answer.duplicate else 202)
