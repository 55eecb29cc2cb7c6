"""`POST /webhooks/github`: verify, classify, store one event, answer — in a few milliseconds.

Order of checks: size (Content-Length before reading, then while reading) → 413; signature
(`X-Hub-Signature-256`, HMAC-SHA256 over the raw body, constant-time, against every secret in
GITHUB_WEBHOOK_SECRET so a rotation can overlap) → 401, logged, nothing stored; `ping` → 200;
JSON → 400; events we do not use → 202 `{"ignored": true}`; a delivery id seen before → 200
`{"event_id": first, "duplicate": true}`; otherwise the event is committed and the answer is 202
`{"event_id": ..., "duplicate": false}`. Concurrent deliveries share transactions (group commit, see
`orchestrator.events.group_commit`); publishing happens after commit, off the request path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from orchestrator.config import get_settings
from orchestrator.events.github import map_delivery
from orchestrator.events.group_commit import GroupCommitter
from orchestrator.events.outbox import emit
from orchestrator.events.redelivery import DEDUP_PREFIX
from orchestrator.http.bodies import read_limited
from orchestrator.http.errors import error_body
from orchestrator.logs import bind, get_logger

router = APIRouter(tags=["webhooks"])
log = get_logger(__name__)


def signature_for(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body` signed with `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_secrets() -> list[str]:
    """The accepted secrets: GITHUB_WEBHOOK_SECRET split on commas (old and new during a rotation)."""
    configured = get_settings().github_webhook_secret
    if configured is None:
        return []
    return [s.strip() for s in configured.get_secret_value().split(",") if s.strip()]


def signature_valid(body: bytes, header: str | None, secrets: list[str]) -> bool:
    """True when `header` is the signature of `body` under one of `secrets` (constant-time compare)."""
    if not header or not header.startswith("sha256="):
        return False
    # Compare against every secret, without stopping early, so timing says nothing about which matched.
    # Bytes, not str: compare_digest raises TypeError on a str with non-ASCII characters.
    sent = header.encode("utf-8", "surrogateescape")
    results = [hmac.compare_digest(signature_for(secret, body).encode(), sent) for secret in secrets]
    return any(results)


def _refuse(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse(error_body(code, detail), status_code=status)


def _parse(body: bytes, content_type: str) -> Any:
    # GitHub sends JSON, or `payload=<json>` when the hook is set to application/x-www-form-urlencoded.
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = (parse_qs(body.decode("utf-8")).get("payload") or [""])[0].encode("utf-8")
    return json.loads(body)


@router.post(
    "/webhooks/github",
    status_code=202,
    responses={200: {"description": "ping, or a delivery seen before"}, 401: {}, 400: {}, 413: {}},
)
async def github_webhook(request: Request) -> JSONResponse:
    """Receive one GitHub webhook delivery."""
    limit = get_settings().github_webhook_max_bytes
    event_name = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "")
    body = await read_limited(request, limit)
    if body is None:
        log.warning("github webhook refused", reason="too large", delivery=delivery, github_event=event_name)
        return _refuse(413, "too_large", f"the body is larger than {limit} bytes")
    secrets = webhook_secrets()
    if not signature_valid(body, request.headers.get("x-hub-signature-256"), secrets):
        reason = "no GITHUB_WEBHOOK_SECRET configured" if not secrets else "missing or bad X-Hub-Signature-256"
        log.warning("github webhook refused", reason=reason, delivery=delivery, github_event=event_name)
        return _refuse(401, "invalid_signature", "missing or bad signature")
    if event_name == "ping":
        return JSONResponse({"pong": True}, status_code=200)
    try:
        payload = _parse(body, request.headers.get("content-type", "application/json"))
    except (ValueError, UnicodeDecodeError):
        return _refuse(400, "bad_request", "the body is not valid JSON")
    if not isinstance(payload, dict):
        return _refuse(400, "bad_request", "the body must be a JSON object")
    if not delivery or len(delivery) > 200 or not event_name:
        return _refuse(400, "bad_request", "X-GitHub-Event and X-GitHub-Delivery are required")
    status, answer, note = await _committer.submit(_Delivery(event_name, delivery, payload))
    # The request's own log line carries these; a second line per delivery would double the logging.
    bind(delivery=delivery, github_event=event_name)
    if note == "accepted":
        bind(event_id=answer["event_id"], duplicate=answer["duplicate"])
    elif note == "ignored":
        bind(ignored=answer["reason"])
    else:
        log.warning("github delivery has an unexpected shape", delivery=delivery, github_event=event_name, error=note)
    return JSONResponse(answer, status_code=status)


@dataclass(frozen=True)
class _Delivery:
    event_name: str
    delivery: str
    payload: dict[str, Any]


def _ingest(session: Session, item: _Delivery) -> tuple[int, dict[str, Any], str]:
    """Store one verified delivery in the caller's transaction: (status, answer, what to log)."""
    # A redelivery maps like the first delivery and `emit` finds its key taken: no lookup first.
    try:
        mapped = map_delivery(session, item.event_name, item.payload)
    except (AttributeError, TypeError, KeyError, ValueError) as exc:
        # Signed by GitHub but not the shape its docs give for this event: refuse it, visibly.
        answer = {"error": "bad_request", "detail": f"unexpected {item.event_name} payload shape"}
        return 400, answer, type(exc).__name__
    if isinstance(mapped, str):
        return 202, {"ignored": True, "reason": mapped}, "ignored"
    emitted = emit(
        session,
        type=mapped.type,
        source="github",
        app_id=mapped.app_id,
        payload=mapped.payload,
        dedup_key=DEDUP_PREFIX + item.delivery,
    )
    answer = {"event_id": emitted.event.id, "duplicate": emitted.duplicate}
    return (200 if emitted.duplicate else 202), answer, "accepted"


# Concurrent deliveries share transactions (see orchestrator.events.group_commit).
_committer: GroupCommitter[_Delivery, tuple[int, dict[str, Any], str]] = GroupCommitter(_ingest, name="github-ingest")
