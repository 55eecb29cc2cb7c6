"""`/hooks/okta`: Okta event hooks — the one-time verification and user deactivations as `owner.left`.

- `GET /hooks/okta`: Okta's verification request; the `X-Okta-Verification-Challenge` header is
  echoed back as `{"verification": "…"}`.
- `POST /hooks/okta`: event deliveries. `user.lifecycle.deactivate`, `user.lifecycle.suspend` and
  `user.lifecycle.delete.initiated` on a known person emit `owner.left`, deduplicated on each
  event's `uuid` (Okta delivers at least once); other event types are acknowledged and ignored.

Both need the `Authorization` header Okta was configured with to equal one of OKTA_HOOK_SECRETS
(compared in constant time against every secret, so a rotation lists old and new). A missing or
wrong one is a 401 and a warning in the log (never the value sent).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.documents import DocumentRefused, load_json
from orchestrator.errors import MalformedPayload, Unauthorized
from orchestrator.http.bodies import read_body
from orchestrator.http.errors import field_error
from orchestrator.identity import service as identity
from orchestrator.logs import get_logger

router = APIRouter(tags=["okta"])
log = get_logger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Okta batches up to 50 events of a few KB each
LEAVING_EVENTS = frozenset({"user.lifecycle.deactivate", "user.lifecycle.suspend", "user.lifecycle.delete.initiated"})


def hook_secrets() -> list[str]:
    """OKTA_HOOK_SECRETS split on commas (old and new during a rotation)."""
    configured = get_settings().okta_hook_secrets
    if configured is None:
        return []
    return [s.strip() for s in configured.get_secret_value().split(",") if s.strip()]


def authorized(header: str | None, secrets: list[str]) -> bool:
    """True when `header` equals one of `secrets`; every secret is compared, in constant time."""
    sent = (header or "").encode("utf-8", "surrogateescape")
    results = [hmac.compare_digest(secret.encode("utf-8"), sent) for secret in secrets]
    return bool(header) and any(results)


def _check(request: Request) -> None:
    secrets = hook_secrets()
    if not authorized(request.headers.get("authorization"), secrets):
        reason = "OKTA_HOOK_SECRETS is not set" if not secrets else "wrong or missing Authorization header"
        log.warning("okta hook refused", reason=reason, client=request.client.host if request.client else None)
        raise Unauthorized(f"okta hook refused: {reason}")


@router.get("/hooks/okta", responses={401: {}})
def verify(request: Request) -> JSONResponse:
    """Answer Okta's one-time verification challenge."""
    _check(request)
    challenge = request.headers.get("x-okta-verification-challenge")
    if not challenge:
        raise MalformedPayload(
            "X-Okta-Verification-Challenge is required",
            detail=[field_error("X-Okta-Verification-Challenge", "required", "header")],
        )
    return JSONResponse({"verification": challenge})


@router.post("/hooks/okta", responses={401: {}, 400: {}, 413: {}})
async def deliver(request: Request) -> JSONResponse:
    """Receive one delivery of Okta events; departures become owner.left."""
    _check(request)
    raw = await read_body(request, MAX_BODY_BYTES)
    try:
        payload = load_json(raw, refuse_nul=True)
    except DocumentRefused as exc:
        raise _malformed(f"the body is refused: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the body is not valid JSON") from None
    data = payload.get("data") if isinstance(payload, dict) else None
    events = data.get("events") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise _malformed("data.events must be a list", "data.events")
    results = await run_in_threadpool(_ingest, [e for e in events if isinstance(e, dict)])
    return JSONResponse({"events": results})


def _malformed(message: str, field: str = "(body)") -> MalformedPayload:
    return MalformedPayload(message, detail=[field_error(field, message)])


def _target_user(event: dict[str, Any]) -> dict[str, Any] | None:
    targets = event.get("target")
    for target in targets if isinstance(targets, list) else []:
        if isinstance(target, dict) and target.get("type") == "User":
            return target
    return None


def _ingest(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for event in events:
        uuid = str(event.get("uuid") or "")[:200]
        kind = str(event.get("eventType") or "")
        if kind not in LEAVING_EVENTS:
            results.append({"uuid": uuid, "ignored": "event type not used"})
            continue
        target = _target_user(event)
        if not uuid or target is None:
            results.append({"uuid": uuid, "ignored": "no uuid or no target User"})
            continue
        with session_scope() as session:
            email = identity.person_for(
                session, external_id=str(target.get("id") or ""), login=str(target.get("alternateId") or "")
            )
            if email is None:
                log.info("okta user left, not a known person", okta_user=target.get("id"), okta_event=uuid)
                results.append({"uuid": uuid, "ignored": "not a known person"})
                continue
            emitted = identity.leave(
                session,
                email,
                source="okta",
                actor="okta",
                reason=f"{email}: {kind} in Okta",
                dedup_key=f"okta-hook:{uuid}",
                data={"okta_event": uuid, "okta_event_type": kind},
            )
            results.append({"uuid": uuid, "event_id": emitted.event.id, "duplicate": emitted.duplicate})
    return results
