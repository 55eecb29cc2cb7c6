"""`POST /webhooks/github`: verify, classify, store one event, answer — in a few milliseconds.

Order of checks: a Content-Length over the cap → 413 before reading; no secret configured or no
`sha256=` signature header → 401 before reading (an unsigned body is never read); the body is then
streamed into one HMAC-SHA256 per secret in GITHUB_WEBHOOK_SECRET (so a rotation can overlap) and
refused with 413 the moment it passes the cap; a signature matching none of them (constant-time) →
401, nothing stored; `ping` → 200; JSON → 400; events we do not use → 202 `{"ignored": true}`; a
delivery id seen before → 200
`{"event_id": first, "duplicate": true}`; otherwise the event is committed and the answer is 202
`{"event_id": ..., "duplicate": false}`. Concurrent deliveries share transactions (group commit, see
`orchestrator.events.group_commit`) and statements: one read of their apps, one INSERT of their
events (`_ingest_batch`); publishing happens after commit, off the request path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from orchestrator.config import get_settings
from orchestrator.documents import DocumentRefused, load_json
from orchestrator.errors import MalformedPayload, SignatureInvalid
from orchestrator.events.github import batch_finder, map_delivery
from orchestrator.events.group_commit import GroupCommitter
from orchestrator.events.outbox import NewEvent, emit_many
from orchestrator.events.redelivery import DEDUP_PREFIX
from orchestrator.http.bodies import read_body, refuse_declared_oversize
from orchestrator.http.errors import field_error
from orchestrator.logs import bind

router = APIRouter(tags=["webhooks"])
_BAD_SIGNATURE = "missing or bad signature"  # what the client is told; the log line says which


def signature_for(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` value GitHub sends for `body` signed with `secret`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_secrets() -> list[str]:
    """The accepted secrets: GITHUB_WEBHOOK_SECRET split on commas (old and new during a rotation)."""
    configured = get_settings().github_webhook_secret
    if configured is None:
        return []
    return list(_parsed_secrets(configured.get_secret_value()))


# Parsed once per setting value rather than per delivery; keyed on the value, so settings that
# change (tests, a reload) are seen at once. A few entries: a rotation has at most two values live.
@functools.lru_cache(maxsize=4)
def _parsed_secrets(configured: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in configured.split(",") if s.strip())


@functools.lru_cache(maxsize=4)
def _keyed_macs(secrets: tuple[str, ...]) -> tuple[hmac.HMAC, ...]:
    """One HMAC per secret with its key already absorbed: a copy costs ~0.5 µs, a new one ~2 µs."""
    return tuple(hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha256) for secret in secrets)


def signature_valid(body: bytes, header: str | None, secrets: list[str]) -> bool:
    """True when `header` is the signature of `body` under one of `secrets` (constant-time compare)."""
    macs = _macs(secrets)
    for mac in macs:
        mac.update(body)
    return _matches(macs, header)


def _macs(secrets: list[str]) -> list[hmac.HMAC]:
    return [mac.copy() for mac in _keyed_macs(tuple(secrets))]


def _matches(macs: list[hmac.HMAC], header: str | None) -> bool:
    if not header or not header.startswith("sha256="):
        return False
    # Compare against every secret, without stopping early, so timing says nothing about which matched.
    # Bytes, not str: compare_digest raises TypeError on a str with non-ASCII characters.
    sent = header.encode("utf-8", "surrogateescape")
    results = [hmac.compare_digest(("sha256=" + mac.hexdigest()).encode(), sent) for mac in macs]
    return any(results)


async def _read_signed(request: Request, limit: int) -> bytes:
    """The body, read once with the signature computed as it streams in; 413 past `limit`, 401 if unsigned."""
    refuse_declared_oversize(request, limit)
    secrets = webhook_secrets()
    header = request.headers.get("x-hub-signature-256")
    if not secrets:
        raise SignatureInvalid("no GITHUB_WEBHOOK_SECRET configured", detail=_BAD_SIGNATURE)
    if not header or not header.startswith("sha256="):
        # Nothing to check it against: refuse without reading the body at all.
        raise SignatureInvalid("missing X-Hub-Signature-256", detail=_BAD_SIGNATURE)
    macs = _macs(secrets)

    def feed(chunk: bytes) -> None:
        for mac in macs:
            mac.update(chunk)

    body = await read_body(request, limit, on_chunk=feed)
    if not _matches(macs, header):
        raise SignatureInvalid("bad X-Hub-Signature-256", detail=_BAD_SIGNATURE)
    return body


def _malformed(message: str, field: str = "(body)", where: str = "body") -> MalformedPayload:
    return MalformedPayload(message, detail=[field_error(field, message, where)])


def _parse(body: bytes, content_type: str) -> Any:
    # GitHub sends JSON, or `payload=<json>` when the hook is set to application/x-www-form-urlencoded.
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = (parse_qs(body.decode("utf-8")).get("payload") or [""])[0].encode("utf-8")
    return load_json(body, refuse_nul=True)


@router.post(
    "/webhooks/github",
    status_code=202,
    responses={200: {"description": "ping, or a delivery seen before"}, 401: {}, 400: {}, 413: {}},
)
async def github_webhook(request: Request) -> JSONResponse:
    """Receive one GitHub webhook delivery."""
    event_name = request.headers.get("x-github-event", "")
    delivery = request.headers.get("x-github-delivery", "")
    # Bound first so that the request's line, and the refusal line if any, say which delivery it was.
    bind(delivery=delivery[:200], github_event=event_name[:100])
    body = await _read_signed(request, get_settings().github_webhook_max_bytes)
    if event_name == "ping":
        return JSONResponse({"pong": True}, status_code=200)
    try:
        payload = _parse(body, request.headers.get("content-type", "application/json"))
    except DocumentRefused as exc:
        raise _malformed(f"the body is refused: {exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise _malformed("the body must be a JSON object")
    if not event_name:
        raise _malformed("X-GitHub-Event is required", "x-github-event", "header")
    if not delivery or len(delivery) > 200:
        raise _malformed("X-GitHub-Delivery is required (at most 200 characters)", "x-github-delivery", "header")
    status, answer, note = await _committer.submit(_Delivery(event_name, delivery, payload))
    if status == 400:
        # Signed by GitHub but not the shape its docs give for this event: refuse it, visibly.
        shape = f"unexpected {event_name} payload shape"
        raise MalformedPayload(f"{shape} ({note})", detail=[field_error("(body)", shape)])
    # The request's own log line carries these; a second line per delivery would double the logging.
    if note == "accepted":
        bind(event_id=answer["event_id"], duplicate=answer["duplicate"])
    else:
        bind(ignored=answer["reason"])
    return JSONResponse(answer, status_code=status)


@dataclass(frozen=True)
class _Delivery:
    event_name: str
    delivery: str
    payload: dict[str, Any]


_Answer = tuple[int, dict[str, Any], str]


def _ingest(session: Session, item: _Delivery) -> _Answer:
    """Store one verified delivery in the caller's transaction: (status, answer, what to log)."""
    return _ingest_batch(session, [item])[0]


def _ingest_batch(session: Session, items: list[_Delivery]) -> list[_Answer]:
    """Store verified deliveries in the caller's transaction, sharing statements: one answer each, in order.

    The pushes' apps are read in one statement and the events inserted in one, whatever the
    batch's size: under load most deliveries share a transaction (group commit), and a statement's
    own CPU in the driver and SQLAlchemy was most of a delivery's (issue 19).
    """
    find = batch_finder(session, [(item.event_name, item.payload) for item in items])
    answers: list[_Answer | None] = [None] * len(items)
    to_store: list[tuple[int, NewEvent]] = []
    for index, item in enumerate(items):
        # A redelivery maps like the first delivery and `emit_many` finds its key taken: no lookup first.
        try:
            mapped = map_delivery(session, item.event_name, item.payload, find=find)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            answers[index] = (400, {}, type(exc).__name__)  # the handler refuses it with MalformedPayload
            continue
        if isinstance(mapped, str):
            answers[index] = (202, {"ignored": True, "reason": mapped}, "ignored")
            continue
        event = NewEvent(mapped.type, "github", mapped.app_id, mapped.payload, DEDUP_PREFIX + item.delivery)
        to_store.append((index, event))
    for (index, _), emitted in zip(to_store, emit_many(session, [event for _, event in to_store]), strict=True):
        answer = {"event_id": emitted.event_id, "duplicate": emitted.duplicate}
        answers[index] = ((200 if emitted.duplicate else 202), answer, "accepted")
    return [answer for answer in answers if answer is not None]


# Concurrent deliveries share transactions (see orchestrator.events.group_commit).
_committer: GroupCommitter[_Delivery, _Answer] = GroupCommitter(_ingest, name="github-ingest", work_batch=_ingest_batch)
