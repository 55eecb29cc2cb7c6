"""Catalog routes under /api/v1/apps: register, list, show, retire, extend, transfer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import structlog
import yaml
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select

from orchestrator import catalog
from orchestrator.auth import can_see, principal
from orchestrator.db import session_scope
from orchestrator.errors import Forbidden, NotFound, ValidationFailed
from orchestrator.http.deps import CurrentToken, PolicyDep, ReadSession
from orchestrator.http.schemas import (
    ActionResult,
    AppDetail,
    AppPage,
    AppRead,
    AuditRead,
    ExtensionBody,
    OwnerBody,
    ReasonBody,
    Registered,
)
from orchestrator.lifecycle import Stage
from orchestrator.manifest import parse_manifest
from orchestrator.models import ApiToken, AuditEntry, DataClass, Event, MicroApp, Role

router = APIRouter(prefix="/api/v1/apps", tags=["apps"])

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


async def _manifest_body(request: Request) -> Any:
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        if content_type in _YAML_TYPES:
            return yaml.safe_load(raw.decode("utf-8"))
        if content_type in ("application/json", ""):
            import json

            return json.loads(raw.decode("utf-8"))
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationFailed("the body is not valid", detail=[{"field": "(body)", "reason": str(exc)}]) from None
    raise ValidationFailed(
        "unsupported content type", detail=[{"field": "content-type", "reason": f"{content_type} is not JSON or YAML"}]
    )


def _visible_app(session: Session, token: ApiToken, app_id: str) -> MicroApp:
    structlog.contextvars.bind_contextvars(app_id=app_id)
    app = catalog.get_app(session, app_id)
    if not can_see(token, app):
        # A maker must not learn that someone else's app exists.
        raise NotFound(f"no app with id {app_id!r}")
    return app


@router.post("", status_code=201, response_model=Registered, responses={200: {"model": Registered}})
async def register_app(
    request: Request,
    token: CurrentToken,
    policy: PolicyDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """Register an app from its manifest (JSON, or YAML with Content-Type application/yaml)."""
    manifest = parse_manifest(await _manifest_body(request))
    actor = principal(token)
    if Role(token.role) is Role.maker and token.person_email not in {
        str(manifest.owner),
        *map(str, manifest.co_owners),
    }:
        raise Forbidden("a maker can only register apps they own or co-own")
    dedup_key = f"api:register:{idempotency_key}" if idempotency_key else None
    with session_scope() as session:
        if dedup_key:
            first = session.exec(select(Event).where(Event.dedup_key == dedup_key)).first()
            if first is not None:
                app = session.get(MicroApp, first.app_id) if first.app_id else None
                body = Registered(app=AppRead.of(app) if app else None, event_id=first.id, duplicate=True)
                return JSONResponse(body.model_dump(mode="json"), status_code=200)
        app, emitted = catalog.register_app(
            session, manifest, actor=actor, policy=policy, source="api", dedup_key=dedup_key
        )
        body = Registered(app=AppRead.of(app), event_id=emitted.event.id, duplicate=False)
    return JSONResponse(body.model_dump(mode="json"), status_code=201)


@router.get("", response_model=AppPage)
def list_apps(
    session: ReadSession,
    token: CurrentToken,
    stage: Stage | None = None,
    owner: str | None = None,
    data_class: DataClass | None = None,
    expiring_before: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AppPage:
    """List apps with filters and cursor pagination; makers see only their own."""
    filters = catalog.AppFilter(
        stage=stage,
        owner=owner,
        data_class=data_class,
        expiring_before=expiring_before,
        visible_to=token.person_email or "" if Role(token.role) is Role.maker else None,
    )
    apps, next_cursor = catalog.list_apps(session, filters, cursor=cursor, limit=limit)
    return AppPage(items=[AppRead.of(a) for a in apps], next_cursor=next_cursor)


@router.get("/{app_id}", response_model=AppDetail)
def show_app(app_id: str, session: ReadSession, token: CurrentToken) -> AppDetail:
    """One app with its audit timeline."""
    app = _visible_app(session, token, app_id)
    rows = session.exec(select(AuditEntry).where(AuditEntry.app_id == app.id).order_by(col(AuditEntry.seq))).all()
    timeline = [
        AuditRead(seq=e.seq, at=e.at, actor=e.actor, action=e.action, reason=e.reason, data=e.data) for e in rows
    ]
    return AppDetail(**AppRead.of(app).model_dump(), timeline=timeline)


@router.post("/{app_id}/retire", response_model=ActionResult, status_code=202)
def retire_app(app_id: str, body: ReasonBody, token: CurrentToken, policy: PolicyDep) -> ActionResult:
    """Start the sunset of an app: it moves to sunsetting and the sunset job takes over."""
    with session_scope() as session:
        app = _visible_app(session, token, app_id)
        emitted = catalog.request_retirement(session, app, actor=principal(token), reason=body.reason, policy=policy)
        return ActionResult(app=AppRead.of(app), event_id=emitted.event.id)


@router.post("/{app_id}/extension", response_model=ActionResult, status_code=202)
def request_extension(app_id: str, body: ExtensionBody, token: CurrentToken, policy: PolicyDep) -> ActionResult:
    """Ask for an extension of the app's expiry; it opens an approval request."""
    with session_scope() as session:
        app = _visible_app(session, token, app_id)
        request, emitted = catalog.request_extension(
            session, app, actor=principal(token), days=body.days, reason=body.reason, policy=policy
        )
        return ActionResult(app=AppRead.of(app), event_id=emitted.event.id if emitted else None, approval_id=request.id)


@router.post("/{app_id}/owner", response_model=ActionResult)
def transfer_owner(app_id: str, body: OwnerBody, token: CurrentToken, policy: PolicyDep) -> ActionResult:
    """Give the app a new owner; an orphaned app returns to its stage."""
    with session_scope() as session:
        app = _visible_app(session, token, app_id)
        if Role(token.role) is Role.maker and token.person_email != app.owner_email:
            raise Forbidden("only the owner, an approver or an admin can transfer an app")
        catalog.transfer_owner(session, app, body.owner, actor=principal(token), reason=body.reason, policy=policy)
        return ActionResult(app=AppRead.of(app))
