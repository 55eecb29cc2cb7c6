"""Catalog routes under /api/v1/apps: register, list, show, retire, extend, transfer, update the manifest.

Handlers stay thin: authorise, call `orchestrator.catalog.service` inside one write transaction (committed
before the response goes out), and shape the answer. A maker only ever sees their own apps: any
other app is a 404 for them, exactly as if it did not exist, and registering an id another maker's
app holds is a 403 "not available to you" that says nothing about that app (a 409 "already exists"
is kept for callers who may see the app).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from orchestrator.audit.models import AuditEntry
from orchestrator.auth.models import ApiToken, Role
from orchestrator.auth.service import can_see, owns, principal
from orchestrator.catalog import service as catalog
from orchestrator.catalog import updates
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.manifest import Manifest, parse_manifest
from orchestrator.catalog.models import DataClass, MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.db import get_engine, session_scope
from orchestrator.errors import Conflict, Forbidden, InvalidTransition, NotFound
from orchestrator.events.models import Event
from orchestrator.http import listing
from orchestrator.http.bodies import MANIFEST_REQUEST_BODY, read_document
from orchestrator.http.deps import CurrentToken, PolicyDep, ReadSession, bind_path_ids
from orchestrator.http.schemas import (
    ERROR_RESPONSES,
    ActionResult,
    AppDetail,
    AppPage,
    AppRead,
    AuditRead,
    ExtensionBody,
    ManifestUpdated,
    OwnerBody,
    ReasonBody,
    Registered,
)
from orchestrator.logs import bind, get_logger
from orchestrator.reviews import store as reviews

router = APIRouter(
    prefix="/api/v1/apps", tags=["apps"], dependencies=[Depends(bind_path_ids)], responses=ERROR_RESPONSES
)
log = get_logger(__name__)


def _visible_app(session: Session, token: ApiToken, app_id: str, *, lock: bool = False) -> MicroApp:
    # FOR UPDATE on PostgreSQL serialises concurrent actions on one app; SQLite's write
    # transaction is already exclusive (the clause is not rendered there).
    app = session.get(MicroApp, app_id, with_for_update=True if lock else None)
    if app is None or not can_see(token, app):
        # A maker must not learn that someone else's app exists.
        raise NotFound(f"no app with id {app_id!r}")
    return app


def _dedup_key(actor: str, idempotency_key: str) -> str:
    # Scoped by caller, so one client's key can never replay another's registration.
    return "api:register:" + hashlib.sha256(f"{actor}\n{idempotency_key}".encode()).hexdigest()


def _repeat(session: Session, dedup_key: str, manifest: Manifest) -> Registered | None:
    first = session.exec(select(Event).where(Event.dedup_key == dedup_key)).first()
    if first is None:
        return None
    if first.app_id != manifest.slug:
        raise Conflict(
            "this Idempotency-Key was already used to register another app",
            detail={"message": "Idempotency-Key reused for a different app", "app_id": first.app_id},
        )
    app = session.get(MicroApp, first.app_id)
    return Registered(app=AppRead.of(app) if app else None, event_id=first.id, duplicate=True)


UNAVAILABLE_ID = "this app id is not available to you: choose another name (or id)"


def _refuse_unseen_id(session: Session, token: ApiToken, app_id: str) -> None:
    """403 when `app_id` is taken by an app the caller may not see (see docs/catalog-api.md, "App ids")."""
    existing = session.get(MicroApp, app_id)
    if existing is not None and not can_see(token, existing):
        # Not the 409 "already exists": that would tell a maker another maker's app exists. The
        # answer names no owner, stage or app, and is the same whatever holds the id.
        raise Forbidden(UNAVAILABLE_ID)


def _register(
    manifest: Manifest, token: ApiToken, policy: Policy, idempotency_key: str | None
) -> tuple[Registered, int]:
    actor = principal(token)
    dedup_key = _dedup_key(actor, idempotency_key) if idempotency_key else None
    try:
        with session_scope() as session:
            repeat = _repeat(session, dedup_key, manifest) if dedup_key else None
            if repeat is not None:
                return repeat, 200
            _refuse_unseen_id(session, token, manifest.slug)
            app, emitted = catalog.register_app(
                session, manifest, actor=actor, policy=policy, source="api", dedup_key=dedup_key
            )
            result = Registered(app=AppRead.of(app), event_id=emitted.event.id, duplicate=False)
    except (IntegrityError, Conflict):
        # A concurrent request inserted the same app or key between our check and our insert (the
        # catalog's own existence check sees a registration committed after our repeat check).
        log.info("registration lost a race", idempotent=bool(dedup_key))
        with session_scope(write=False) as session:
            repeat = _repeat(session, dedup_key, manifest) if dedup_key else None
            if repeat is None:
                _refuse_unseen_id(session, token, manifest.slug)
        if repeat is not None:
            return repeat, 200
        raise Conflict(f"an app with id {manifest.slug!r} already exists", detail={"id": manifest.slug}) from None
    bind(event_id=result.event_id)
    log.info("app registered", data_class=manifest.data_class.value, owner=str(manifest.owner))
    return result, 201


@router.post(
    "",
    status_code=201,
    response_model=Registered,
    responses={200: {"model": Registered, "description": "A repeat of an Idempotency-Key: the first event"}},
    openapi_extra=MANIFEST_REQUEST_BODY,
)
async def register_app(
    request: Request,
    token: CurrentToken,
    policy: PolicyDep,
    idempotency_key: Annotated[
        str | None, Header(max_length=200, description="a repeat answers 200 with the first event")
    ] = None,
) -> JSONResponse:
    """Register an app from its manifest (JSON, or YAML with Content-Type application/yaml)."""
    manifest = parse_manifest(await read_document(request))
    bind(app_id=manifest.slug)
    if Role(token.role) is Role.maker and not owns(token, {str(manifest.owner), *map(str, manifest.co_owners)}):
        raise Forbidden("a maker can only register apps they own or co-own")
    body, status = await run_in_threadpool(_register, manifest, token, policy, idempotency_key)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def app_filter(token: ApiToken, **filters: Any) -> catalog.AppFilter:
    """The catalog filter of a listing by `token`: makers see only the apps they own or co-own."""
    # "" for a maker token without a person: matches no app at all.
    visible_to = (token.person_email or "") if Role(token.role) is Role.maker else None
    return catalog.AppFilter(**filters, visible_to=visible_to)


def list_apps(
    session: Session,
    token: ApiToken,
    stage: Stage | None = None,
    owner: str | None = None,
    data_class: DataClass | None = None,
    expiring_before: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    q: str | None = None,
    sort: str = "id",
) -> AppPage:
    """One page of apps as `AppPage` models, in the caller's session (the web console's listings)."""
    filters = app_filter(
        token, stage=stage, owner=owner, data_class=data_class, expiring_before=expiring_before, text=q
    )
    apps, next_cursor = catalog.list_apps(session, filters, cursor=cursor, limit=limit, sort=sort)
    return AppPage(items=[AppRead.of(a) for a in apps], next_cursor=next_cursor)


# name="list_apps": the OpenAPI operation id stays what it was when the route was `list_apps` itself.
@router.get("", response_model=AppPage, name="list_apps")
async def list_apps_json(
    token: CurrentToken,
    stage: Stage | None = None,
    owner: Annotated[str | None, Query(max_length=320, description="owner or co-owner email")] = None,
    data_class: DataClass | None = None,
    expiring_before: Annotated[datetime | None, Query(description="ISO date or datetime (UTC if no zone)")] = None,
    cursor: Annotated[str | None, Query(max_length=1200, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    q: Annotated[str | None, Query(max_length=200, description="words in the id, name or description")] = None,
    sort: Annotated[
        Literal["id", "name", "expires", "stage", "last_used"],
        Query(
            description="id, name, expires (soonest first, none last), stage (lifecycle order) or last_used "
            "(most recent first, never used last); each ends on the id"
        ),
    ] = "id",
) -> Response:
    """List apps with filters and cursor pagination; makers see only their own."""
    filters = app_filter(
        token, stage=stage, owner=owner, data_class=data_class, expiring_before=expiring_before, text=q
    )
    # One hop to a thread for the whole read (session, query, serialisation), and the bytes of
    # `AppPage` written straight from the rows (orchestrator.http.listing).
    body = await run_in_threadpool(_list_page, filters, cursor, limit, sort)
    return Response(content=body, media_type="application/json")


def _list_page(filters: catalog.AppFilter, cursor: str | None, limit: int, sort: str) -> bytes:
    if sort != "id":
        with session_scope(write=False) as session:
            apps, next_cursor = catalog.list_apps(session, filters, cursor=cursor, limit=limit, sort=sort)
            return listing.page_json(apps, next_cursor)
    # The id order reads only the columns the answer shows, as plain rows: no MicroApp objects.
    engine = get_engine()
    to_utc = False
    server = (
        listing.server_page_rows(engine, filters, cursor, limit + 1) if engine.dialect.name == "postgresql" else None
    )
    if server is not None:
        rows, to_utc = server
    else:
        query = catalog.list_query(filters, cursor=cursor, limit=limit + 1)
        if engine.dialect.name == "postgresql":
            # One SELECT is consistent on its own: without BEGIN and COMMIT it is one round trip, not three.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                rows = list(connection.execute(query.with_only_columns(*listing.SERVER_COLUMNS)).all())
                to_utc = not listing.is_utc(connection.connection.dbapi_connection.info.timezone)  # type: ignore[union-attr]
        else:
            with session_scope(write=False) as session:
                rows = list(session.execute(query.with_only_columns(*listing.COLUMNS)).all())
    # Rows are tuples of the driver or SQLAlchemy's; the id is the first column either way.
    next_cursor = catalog.id_cursor(rows[limit - 1][0]) if len(rows) > limit else None
    return listing.rows_page_json(rows[:limit], next_cursor, to_utc=to_utc)


@router.get("/{app_id}", response_model=AppDetail)
def show_app(app_id: str, session: ReadSession, token: CurrentToken) -> AppDetail:
    """One app with its audit timeline, oldest first."""
    app = _visible_app(session, token, app_id)
    rows = session.exec(select(AuditEntry).where(AuditEntry.app_id == app.id).order_by(col(AuditEntry.seq))).all()
    timeline = [
        AuditRead(seq=e.seq, at=e.at, actor=e.actor, action=e.action, reason=e.reason, data=e.data) for e in rows
    ]
    return AppDetail(**AppRead.of(app).model_dump(), timeline=timeline)


@router.post("/{app_id}/retire", response_model=ActionResult, status_code=202)
def retire_app(
    app_id: str, token: CurrentToken, policy: PolicyDep, body: Annotated[ReasonBody | None, Body()] = None
) -> ActionResult:
    """Start the sunset of an app: it moves to sunsetting and the sunset job takes over."""
    reason = body.reason if body else ""
    with session_scope() as session:
        app = _visible_app(session, token, app_id, lock=True)
        emitted = catalog.request_retirement(session, app, actor=principal(token), reason=reason, policy=policy)
        result = ActionResult(app=AppRead.of(app), event_id=emitted.event.id)
    bind(event_id=result.event_id)
    log.info("retirement requested", stage=result.app.stage)
    return result


@router.post(
    "/{app_id}/extension",
    response_model=ActionResult,
    status_code=202,
    responses={200: {"model": ActionResult, "description": "An extension request was already open: that one"}},
)
def request_extension(
    app_id: str, token: CurrentToken, policy: PolicyDep, body: Annotated[ExtensionBody | None, Body()] = None
) -> Any:
    """Ask for more time before expiry: opens one extension approval per cycle (a repeat returns it)."""
    body = body or ExtensionBody()
    with session_scope() as session:
        app = _visible_app(session, token, app_id, lock=True)
        request, emitted = catalog.request_extension(
            session, app, actor=principal(token), days=body.days, reason=body.reason, policy=policy
        )
        result = ActionResult(
            app=AppRead.of(app),
            event_id=emitted.event.id if emitted else None,
            approval_id=request.id,
            duplicate=emitted is None,
        )
    bind(event_id=result.event_id, approval_id=result.approval_id)
    log.info("extension requested", duplicate=result.duplicate)
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if result.duplicate else 202)


@router.post("/{app_id}/owner", response_model=ActionResult)
def transfer_owner(app_id: str, body: OwnerBody, token: CurrentToken, policy: PolicyDep) -> ActionResult:
    """Give the app a new owner; an orphaned or suspended app returns to the stage it was in."""
    with session_scope() as session:
        app = _visible_app(session, token, app_id, lock=True)
        if Role(token.role) is Role.maker and not owns(token, {app.owner_email}):
            raise Forbidden("only the owner, an approver or an admin can transfer an app")
        catalog.transfer_owner(session, app, body.owner, actor=principal(token), reason=body.reason, policy=policy)
        result = ActionResult(app=AppRead.of(app))
    log.info("owner transferred", stage=result.app.stage)
    return result


@router.put(
    "/{app_id}/manifest",
    response_model=ManifestUpdated,
    status_code=202,
    openapi_extra=MANIFEST_REQUEST_BODY,
)
async def update_manifest(app_id: str, request: Request, token: CurrentToken, policy: PolicyDep) -> ManifestUpdated:
    """Send a new manifest (JSON, or YAML with Content-Type application/yaml) and queue its review.

    What narrows the app's reach (removed scopes, connectors, endpoints; descriptive fields) applies at
    once; what widens it (added scopes, connectors or endpoints, another data class, more LLM use) is
    reviewed and becomes the catalog's when the app is approved. Owners and admins only.
    """
    manifest = parse_manifest(await read_document(request))
    return await run_in_threadpool(_update_manifest, app_id, manifest, token, policy)


def _update_manifest(app_id: str, manifest: Manifest, token: ApiToken, policy: Policy) -> ManifestUpdated:
    actor = principal(token)
    with session_scope() as session:
        app = _visible_app(session, token, app_id, lock=True)
        if Role(token.role) is not Role.admin and not owns(token, app.owners):
            raise Forbidden("only an owner or an admin can update an app's manifest")
        updates.check_update(app, manifest)
        if app.stage in reviews.NOT_REVIEWED:
            raise InvalidTransition(
                f"an app in stage {app.stage.value} is not reviewed any more",
                stage=app.stage.value,
                action="update_manifest",
                allowed=[],
            )
        proposed = manifest.model_dump(mode="json")
        change = updates.apply_at_once(
            session, app, proposed, actor=actor, policy=policy, source=f"sent through the API by {actor}"
        )
        review_id = reviews.request_review(
            session, app, actor=actor, policy=policy, trigger="manifest.updated", proposed_manifest=proposed
        )
        result = ManifestUpdated(
            app=AppRead.of(app),
            review_id=review_id,
            applied=change.narrowing_lines(),
            waiting_for_approval=change.widening_lines(),
            change=change.as_data(),
        )
    bind(review_id=review_id)
    log.info("manifest updated", widened=change.widened, narrowed=change.narrowed)
    return result
