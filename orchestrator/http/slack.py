"""POST /slack/interactions: verify Slack's signature, record the click, answer 200 within milliseconds.

Order of work: signature (`SignatureVerifier`, 5-minute window, raw body) → parse → record the
interaction row and commit → empty 200 → the worker acts on it (notifications queue).

Reject and Request changes first need a reason, from a modal opened with `views.open`. Slack's
`trigger_id` dies 3 s after the click, so the modal cannot wait for the queue (a busy worker would
miss the window and the click would silently do nothing). It is opened by this process right after
the 200 is sent (a Starlette background task, bounded to 2.5 s): the ack stays fast, and if the
process dies in between, nothing durable is lost — no decision exists yet, the approver clicks
again. The decision itself only ever happens in the worker, from the modal's `view_submission`.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from slack_sdk.signature import Clock, SignatureVerifier
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from orchestrator.approvals import interactions, messages
from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.catalog.models import MicroApp
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.documents import DocumentRefused, load_json
from orchestrator.errors import IntegrationError, MalformedPayload, SignatureInvalid
from orchestrator.http.bodies import read_body
from orchestrator.http.errors import field_error
from orchestrator.logs import get_logger
from orchestrator.notifications.service import INTERACTION_TASK, enqueue, get_notifier

router = APIRouter(tags=["slack"])
log = get_logger(__name__)

MODAL_TIMEOUT_SECONDS = 2.5  # inside Slack's 3 s trigger_id lifetime
MAX_AGE_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024  # interaction payloads are a few KB, a big modal's state a few hundred


def _digits(text: str) -> bool:
    # str.isdigit() is true for "²" and other Unicode digits that int() refuses: ASCII only.
    return text.isascii() and text.isdigit()


def verify_signature(body: bytes, headers: Any, *, secret: str, clock: Clock | None = None) -> None:
    """Raise SignatureInvalid unless `body` carries Slack's valid, fresh v0 signature."""
    verifier = SignatureVerifier(secret, clock=clock or Clock())
    try:
        if verifier.is_valid_request(body, dict(headers)):
            return
    except (ValueError, TypeError):
        # slack_sdk raises on a non-numeric timestamp, a non-UTF-8 body or a non-ASCII signature.
        pass
    stamp = headers.get("x-slack-request-timestamp") or headers.get("X-Slack-Request-Timestamp")
    now = (clock or Clock()).now()
    stale = stamp is not None and _digits(stamp.lstrip("-")) and abs(now - int(stamp)) > MAX_AGE_SECONDS
    raise SignatureInvalid("stale Slack request timestamp" if stale else "bad or missing Slack signature")


async def read_slack_body(request: Request, limit: int, *, clock: Clock | None = None) -> bytes:
    """The body of a Slack request, read bounded (413 past `limit`) and then verified (401, SignatureInvalid).

    slack_sdk's verifier needs the whole body, so it is read first — never more than `limit` bytes.
    """
    body = await read_body(request, limit)
    secret = get_settings().slack_signing_secret
    if secret is None:
        raise SignatureInvalid("SLACK_SIGNING_SECRET is not configured; Slack requests cannot be verified")
    verify_signature(body, request.headers, secret=secret.get_secret_value(), clock=clock)
    return body


def _payload(body: bytes) -> Any:
    """The JSON document in the form's `payload` field; MalformedPayload (400) when absent or unparseable."""
    form = parse_qs(body.decode("utf-8", errors="replace"))
    raw = form.get("payload")
    if not raw:
        raise _malformed("the form has no payload field", "payload")
    try:
        return load_json(raw[0], refuse_nul=True)
    except DocumentRefused as exc:
        raise _malformed(f"the payload is refused: {exc}", "payload") from None
    except ValueError:
        raise _malformed("the payload is not valid JSON", "payload") from None


def _malformed(message: str, field: str) -> MalformedPayload:
    return MalformedPayload(message, detail=[field_error(field, message)])


def _record(click: interactions.Click, dedup_key: str, retry_num: int) -> int | None:
    with session_scope() as session:
        return interactions.record(session, click, dedup_key=dedup_key, retry_num=retry_num, queue=False)


def _queue(interaction_id: int) -> None:
    # After the response: a slow or unreachable broker never delays Slack's ack; the row is
    # committed already, so if this fails the sweep queues it.
    enqueue([(INTERACTION_TASK, interaction_id, None)])


def _open_reason_modal(click: interactions.Click, dedup_key: str, retry_num: int) -> None:
    """Open the reason modal, or hand the click to the worker when the request is no longer pending."""
    started = time.monotonic()
    with session_scope(write=False) as session:
        approval = session.get(ApprovalRequest, click.approval_id) if click.approval_id else None
        app = session.get(MicroApp, approval.app_id) if approval else None
        pending = approval is not None and approval.status == ApprovalStatus.pending
        name = app.name if app else ""
    if not pending or not click.trigger_id or click.approval_id is None:
        interaction_id = _record(click, dedup_key, retry_num)  # the worker tells the clicker why nothing happened
        if interaction_id is not None:
            _queue(interaction_id)
        return
    view = messages.reason_modal(
        approval_id=click.approval_id,
        decision=interactions.MODAL_ACTIONS[messages.SlackAction(click.action)],
        app_name=name,
        channel=click.channel,
        message_ts=click.message_ts,
    )
    try:
        get_notifier(timeout=MODAL_TIMEOUT_SECONDS).open_view(trigger_id=click.trigger_id, view=view)
    except IntegrationError as exc:
        log.warning("reason modal not opened", approval_id=click.approval_id, error=exc.message)
        return
    log.info("reason modal opened", approval_id=click.approval_id, ms=round((time.monotonic() - started) * 1000, 1))


@router.post("/slack/interactions", status_code=200)
async def slack_interactions(request: Request) -> Response:
    """Slack's interactivity request URL: verified, recorded, acknowledged with an empty 200."""
    body = await read_slack_body(request, MAX_BODY_BYTES)
    click = interactions.parse(_payload(body))
    if click is None:
        return Response(status_code=200)  # link buttons and payloads we do not handle: acknowledged only
    dedup_key = hashlib.sha256(body).hexdigest()  # a Slack retry repeats the body byte for byte
    retry = request.headers.get("x-slack-retry-num", "0")
    retry_num = int(retry) if _digits(retry) and len(retry) <= 4 else 0
    if click.opens_modal:
        return Response(status_code=200, background=BackgroundTask(_open_reason_modal, click, dedup_key, retry_num))
    interaction_id = await run_in_threadpool(_record, click, dedup_key, retry_num)
    if interaction_id is None:
        return Response(status_code=200)  # this exact request was recorded before (a Slack retry)
    return Response(status_code=200, background=BackgroundTask(_queue, interaction_id))
