"""SCIM 2.0 service provider under `/scim/v2` (RFC 7643/7644), for Okta and Microsoft Entra provisioning.

- `GET/POST /scim/v2/Users`, `GET/PUT/PATCH/DELETE /scim/v2/Users/{id}`: the people the IdP
  provisions (orchestrator.identity); `filter=userName eq "…"` (also externalId, id, emails) and
  `startIndex`/`count` pagination. A deactivation (`active: false` by PATCH or PUT) or a DELETE
  raises `owner.left`; replays are harmless.
- `GET /scim/v2/ServiceProviderConfig`, `/ResourceTypes[/{id}]`, `/Schemas[/{id}]`: discovery.

Every route needs a bearer API token of the `scim` role (and that role opens nothing else). Every
error — 401, 404, 409, a bad filter or PATCH, a validation error — is a SCIM Error message
(`urn:ietf:params:scim:api:messages:2.0:Error`, `status` as a string, `scimType` where RFC 7644
§3.12 has one) sent as `application/scim+json`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Patch,
    ResourceType,
    Schema,
    ServiceProviderConfig,
    Sort,
    User,
)
from starlette.concurrency import run_in_threadpool

from orchestrator.auth.models import ApiToken
from orchestrator.auth.service import authenticate
from orchestrator.db import session_scope
from orchestrator.documents import DocumentRefused, load_json
from orchestrator.errors import OrchestratorError, PayloadTooLarge
from orchestrator.http.bodies import read_body
from orchestrator.identity import service as identity
from orchestrator.identity.models import IdpUser
from orchestrator.identity.scim import ScimRefused, ScimUser, parse_user, response_parameters, to_response
from orchestrator.logs import bind, get_logger

log = get_logger(__name__)

PREFIX = "/scim/v2"
MEDIA_TYPE = "application/scim+json"
MAX_BODY_BYTES = 256 * 1024  # a User is a few KB
MAX_COUNT = 200
_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
_LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def scim_error(status: int, detail: str, scim_type: str | None = None) -> Response:
    """A SCIM Error message (RFC 7644 §3.12)."""
    body: dict[str, Any] = {"schemas": [_ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(json.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


def scim_json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A SCIM JSON response."""
    return Response(json.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


class ScimRoute(APIRoute):
    """A route whose every refusal, its dependencies' included, is a SCIM Error message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, with SCIM errors for refusals (server faults go to the app's handlers)."""
        handler = super().get_route_handler()

        async def _handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ScimRefused as exc:
                return scim_error(exc.status, str(exc), exc.scim_type)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ())) or "(request)"
                return scim_error(400, f"{where}: {first.get('msg', 'invalid')}", "invalidValue")
            except OrchestratorError as exc:
                if exc.status_code >= 500:
                    raise
                if exc.status_code == 401:
                    log.warning("scim request refused", reason=str(exc.detail))
                return scim_error(exc.status_code, str(exc.detail))

        return _handle


router = APIRouter(prefix=PREFIX, tags=["scim"], route_class=ScimRoute)
_bearer = HTTPBearer(auto_error=False, description="An API token of the scim role.")


def _lookup(bearer: str | None) -> ApiToken:
    with session_scope(write=False) as session:
        return authenticate(session, bearer, scim=True)


async def scim_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> ApiToken:
    """The request's token, which must be of the `scim` role (401 otherwise)."""
    bearer = credentials.credentials.strip() if credentials and credentials.credentials else None
    token = await run_in_threadpool(_lookup, bearer)
    request.state.principal = f"scim:{token.name}"
    bind(actor=request.state.principal)
    return token


ScimToken = Annotated[ApiToken, Depends(scim_token)]


def _actor(token: ApiToken) -> str:
    return f"scim:{token.name}"


async def _body(request: Request) -> Any:
    try:
        raw = await read_body(request, MAX_BODY_BYTES)
    except PayloadTooLarge:
        raise ScimRefused(f"the body is over {MAX_BODY_BYTES} bytes", status=413, scim_type=None) from None
    try:
        return load_json(raw, refuse_nul=True)
    except DocumentRefused as exc:
        raise ScimRefused(f"the body is refused: {exc}", scim_type="invalidSyntax") from None
    except (ValueError, UnicodeDecodeError):
        raise ScimRefused("the body is not valid JSON", scim_type="invalidSyntax") from None


def _location(request: Request, user_id: str) -> str:
    return str(request.url_for("scim_get_user", user_id=user_id))


def _resource(request: Request, row: IdpUser, parameters: Any = None) -> dict[str, Any]:
    return to_response(
        row.resource,
        id=row.id,
        created=row.created_at,
        modified=row.updated_at,
        location=_location(request, row.id),
        active=row.active,
        parameters=parameters,
    )


def _query_parameters(request: Request) -> Any:
    query = request.query_params
    return response_parameters(query.get("attributes"), query.get("excludedAttributes"))


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ScimRefused(f"{name} must be an integer", scim_type="invalidValue") from None


@router.get("/Users", name="scim_list_users")
def list_users(request: Request, token: ScimToken) -> Response:
    """Users, optionally filtered (`userName eq "…"`), `startIndex` 1-based, `count` at most 200."""
    start = _int_param(request, "startIndex", 1)
    count = _int_param(request, "count", 100)
    return _search(request, request.query_params.get("filter"), start, count, _query_parameters(request))


@router.post("/Users/.search", name="scim_search_users")
async def search_users(request: Request, token: ScimToken) -> Response:
    """A query as a SearchRequest body (RFC 7644 §3.4.3): filter, startIndex, count, attributes."""
    return await run_in_threadpool(_search_body, request, await _body(request))


@router.post("/.search", name="scim_search")
async def search_all(request: Request, token: ScimToken) -> Response:
    """A root search: Users are the only resource type."""
    return await run_in_threadpool(_search_body, request, await _body(request))


def _search_body(request: Request, body: Any) -> Response:
    if not isinstance(body, dict):
        raise ScimRefused("the body must be a SearchRequest object", scim_type="invalidSyntax")
    start, count = body.get("startIndex", 1), body.get("count", 100)
    if not isinstance(start, int) or not isinstance(count, int):
        raise ScimRefused("startIndex and count must be integers", scim_type="invalidValue")
    filter = body.get("filter")
    if filter is not None and not isinstance(filter, str):
        raise ScimRefused("filter must be a string", scim_type="invalidFilter")
    parameters = response_parameters(body.get("attributes"), body.get("excludedAttributes"))
    return _search(request, filter, start, count, parameters)


def _search(request: Request, filter: str | None, start: int, count: int, parameters: Any) -> Response:
    start = max(start, 1)
    count = min(max(count, 0), MAX_COUNT)
    with session_scope(write=False) as session:
        page = identity.list_users(session, filter=filter, start_index=start, count=count)
        resources = [_resource(request, row, parameters) for row in page.users]
    return scim_json(
        {
            "schemas": [_LIST_SCHEMA],
            "totalResults": page.total,
            "startIndex": start,
            "itemsPerPage": len(resources),
            "Resources": resources,
        }
    )


@router.post("/Users", name="scim_create_user", status_code=201)
async def create_user(request: Request, token: ScimToken) -> Response:
    """Provision a user: 201 with the resource, 409 uniqueness when the userName exists."""
    user = parse_user(await _body(request))
    body = await run_in_threadpool(_create, request, user, _actor(token))
    return scim_json(body, 201, headers={"Location": body["meta"]["location"]})


def _create(request: Request, user: ScimUser, actor: str) -> dict[str, Any]:
    with session_scope() as session:
        row = identity.create_user(session, user, actor=actor)
        return _resource(request, row)


@router.get("/Users/{user_id}", name="scim_get_user")
def get_user(user_id: str, request: Request, token: ScimToken) -> Response:
    """One user (404 when unknown)."""
    parameters = _query_parameters(request)
    with session_scope(write=False) as session:
        return scim_json(_resource(request, identity.get_user(session, user_id), parameters))


@router.put("/Users/{user_id}", name="scim_replace_user")
async def replace_user(user_id: str, request: Request, token: ScimToken) -> Response:
    """Replace a user; `active: false` raises owner.left."""
    user = parse_user(await _body(request))
    actor = _actor(token)

    def _replace() -> dict[str, Any]:
        with session_scope() as session:
            row = identity.replace_user(session, identity.get_user(session, user_id), user, actor=actor)
            return _resource(request, row)

    return scim_json(await run_in_threadpool(_replace))


@router.patch("/Users/{user_id}", name="scim_patch_user")
async def patch_user(user_id: str, request: Request, token: ScimToken) -> Response:
    """Apply PatchOp operations (add/replace/remove, Entra's and Okta's forms); 200 with the resource."""
    body = await _body(request)
    actor = _actor(token)

    def _patch() -> dict[str, Any]:
        with session_scope() as session:
            row = identity.patch_user(session, identity.get_user(session, user_id), body, actor=actor)
            return _resource(request, row)

    return scim_json(await run_in_threadpool(_patch))


@router.delete("/Users/{user_id}", name="scim_delete_user", status_code=204)
def delete_user(user_id: str, token: ScimToken) -> Response:
    """Deprovision a user (an active one leaves first); 404 when unknown."""
    with session_scope() as session:
        identity.delete_user(session, identity.get_user(session, user_id), actor=_actor(token))
    return Response(status_code=204)


def _config() -> dict[str, Any]:
    config = ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="OAuth Bearer Token",
                description="An orchestrator API token of the scim role: orchestrator token create --role scim",
                primary=True,
            )
        ],
    )
    return config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)


def _schemas() -> list[Schema]:
    return [User.to_schema(), EnterpriseUser.to_schema()]


def _resource_types() -> list[ResourceType]:
    return [ResourceType.from_resource(ScimUser)]


def _listing(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [_LIST_SCHEMA],
        "totalResults": len(items),
        "startIndex": 1,
        "itemsPerPage": len(items),
        "Resources": items,
    }


@router.get("/ServiceProviderConfig", name="scim_service_provider_config")
def service_provider_config(token: ScimToken) -> Response:
    """What this service provider supports (PATCH and filter yes; bulk, sort, etag no)."""
    return scim_json(_config())


@router.get("/ResourceTypes", name="scim_resource_types")
def resource_types(token: ScimToken) -> Response:
    """The one resource type, User, with the enterprise extension."""
    return scim_json(_listing([r.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for r in _resource_types()]))


@router.get("/ResourceTypes/{name}", name="scim_resource_type")
def resource_type(name: str, token: ScimToken) -> Response:
    """One resource type (404 when unknown)."""
    for item in _resource_types():
        if item.id == name:
            return scim_json(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    raise ScimRefused(f"no resource type {name!r}", status=404, scim_type=None)


@router.get("/Schemas", name="scim_schemas")
def schemas(token: ScimToken) -> Response:
    """The User and enterprise User schemas."""
    return scim_json(_listing([s.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE) for s in _schemas()]))


@router.get("/Schemas/{schema_id}", name="scim_schema")
def schema(schema_id: str, token: ScimToken) -> Response:
    """One schema by its URN (404 when unknown)."""
    for item in _schemas():
        if item.id == schema_id:
            return scim_json(item.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))
    raise ScimRefused(f"no schema {schema_id!r}", status=404, scim_type=None)


@router.api_route(
    "/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], name="scim_unknown", include_in_schema=False
)
def unknown(rest: str, token: ScimToken) -> Response:
    """Anything else under /scim/v2: 405 on a known endpoint, else a SCIM 404 (no Groups, Bulk or Me)."""
    path = f"{PREFIX}/{rest}"
    allowed = sorted(
        {
            method
            for route in router.routes
            if isinstance(route, APIRoute) and route.name != "scim_unknown" and route.path_regex.match(path)
            for method in route.methods or ()
        }
    )
    if allowed:
        response = scim_error(405, f"/{rest[:200]} allows {', '.join(allowed)}")
        response.headers["Allow"] = ", ".join(allowed)
        return response
    raise ScimRefused(f"no SCIM endpoint /{rest[:200]}", status=404, scim_type=None)
