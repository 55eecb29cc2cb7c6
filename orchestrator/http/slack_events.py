"""`POST /slack/events`: the Slack Events API — `url_verification` and deleted users (`user_change`).

Every request is read bounded (413 past 1 MB) and checked with slack_sdk's SignatureVerifier against
SLACK_SIGNING_SECRET (HMAC over `v0:{timestamp}:{raw body}`, at most 5 minutes old); a bad one is
refused with 401 and logged (`orchestrator.http.slack.read_slack_body`).
A `user_change` whose user is `deleted: true` becomes `owner.left` for the person with that Slack
user id (or, failing that, that profile email), deduplicated on the Events API `event_id`, so
Slack's retries (X-Slack-Retry-Num) answer 200 with the first event's id.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from slack_sdk.signature import Clock
from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator.catalog.models import Person
from orchestrator.db import session_scope
from orchestrator.documents import DocumentRefused, load_json
from orchestrator.errors import MalformedPayload, SignatureInvalid
from orchestrator.events.models import Event
from orchestrator.events.outbox import emit
from orchestrator.events.types import EventType
from orchestrator.http.errors import field_error
from orchestrator.http.slack import read_slack_body, verify_signature
from orchestrator.logs import bind, get_logger

router = APIRouter(tags=["slack"])
log = get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Slack event payloads are a few KB
DEDUP_PREFIX = "slack-event:"
clock = Clock()  # replaced by tests that verify old, documented vectors


def verify(body: bytes, headers: dict[str, str], secret: str) -> bool:
    """True when Slack signed `body` with `secret` within the last 5 minutes."""
    try:
        verify_signature(body, headers, secret=secret, clock=clock)
    except SignatureInvalid:
        return False
    return True


@router.post("/slack/events", responses={401: {}, 400: {}, 413: {}})
async def slack_events(request: Request) -> JSONResponse:
    """Receive one Slack Events API request."""
    retry = request.headers.get("x-slack-retry-num")
    if retry is not None:
        bind(slack_retry=retry[:10])
    body = await read_slack_body(request, MAX_BODY_BYTES, clock=clock)
    try:
        payload = load_json(body, refuse_nul=True)
    except DocumentRefused as exc:
        raise _malformed(f"the body is refused: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise _malformed("the body must be a JSON object")
    if payload.get("type") == "url_verification":
        return JSONResponse({"challenge": payload.get("challenge", "")})
    inner = payload.get("event")
    inner = inner if isinstance(inner, dict) else {}
    user = inner.get("user")
    if payload.get("type") != "event_callback" or inner.get("type") != "user_change" or not isinstance(user, dict):
        return JSONResponse({"ignored": True, "reason": "event not used"})
    if not user.get("deleted"):
        return JSONResponse({"ignored": True, "reason": "user not deleted"})
    event_id = str(payload.get("event_id") or "")
    if not event_id or len(event_id) > 200:
        raise _malformed("event_id is required (at most 200 characters)", "event_id")
    answer = await run_in_threadpool(_ingest_deleted_user, event_id, user)
    return JSONResponse(answer)


def _malformed(message: str, field: str = "(body)") -> MalformedPayload:
    return MalformedPayload(message, detail=[field_error(field, message)])


def _person(session: Session, user: dict[str, Any]) -> Person | None:
    slack_id = str(user.get("id") or "")
    if slack_id:
        person = session.exec(select(Person).where(Person.slack_user_id == slack_id)).first()
        if person is not None:
            return person
    profile = user.get("profile")
    email = str((profile if isinstance(profile, dict) else {}).get("email") or "").lower()
    if email:
        return session.exec(select(Person).where(func.lower(col(Person.email)) == email)).first()
    return None


def _ingest_deleted_user(event_id: str, user: dict[str, Any]) -> dict[str, Any]:
    dedup_key = DEDUP_PREFIX + event_id
    with session_scope() as session:
        first = session.exec(select(Event.id).where(Event.dedup_key == dedup_key)).first()
        if first is not None:
            return {"event_id": first, "duplicate": True}
        person = _person(session, user)
        if person is None:
            log.info("slack user deleted, not a known person", slack_user=user.get("id"))
            return {"ignored": True, "reason": "not a known person"}
        emitted = emit(
            session,
            type=EventType.owner_left,
            source="slack",
            payload={
                "email": person.email,
                "slack_user_id": user.get("id"),
                "actor": "slack",
                "reason": f"{person.email} was deactivated in Slack",
            },
            dedup_key=dedup_key,
        )
        return {"event_id": emitted.event.id, "duplicate": emitted.duplicate}
