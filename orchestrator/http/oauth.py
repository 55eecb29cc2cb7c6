"""OAuth endpoints of the token service: token exchange, introspection, the JWKS.

- `POST /oauth/token` — RFC 8693 token exchange (form-encoded); no caller authentication beyond
  the `subject_token` itself.
- `POST /oauth/introspect` — RFC 7662 (form-encoded `token`); the caller (the API gateway)
  authenticates with an orchestrator API token as a Bearer header, cached for AUTH_CACHE_SECONDS
  unless access changed meanwhile (a token revoked, a person left: see `orchestrator.auth.changes`).
- `GET /.well-known/jwks.json` — the public keys that verify issued tokens, a rotated key included
  from within SIGNING_KEYS_REFRESH_SECONDS of the rotation (before it signs: see `tokens.keys`).

These endpoints answer errors in the OAuth shape `{"error": …, "error_description": …}` (RFC 6749
§5.2), not the API's generic one; `oauth_error` is the one place that writes that shape and logs the
refusal. Forms are read with the API's capped reader (`read_body`); its PayloadTooLarge is answered
here as `invalid_request` with status 413.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from orchestrator.auth import changes
from orchestrator.auth.service import authenticate, hash_token
from orchestrator.catalog.policy import get_policy
from orchestrator.config import get_settings
from orchestrator.credentials.providers import validate_providers
from orchestrator.credentials.tokens.exchange import ExchangeRequest, OAuthError, exchange
from orchestrator.credentials.tokens.introspection import introspect
from orchestrator.credentials.tokens.keys import get_keyring
from orchestrator.credentials.tokens.revocation_feed import start_feed, stop_feed
from orchestrator.db import session_scope
from orchestrator.documents import control_character
from orchestrator.errors import PayloadTooLarge, TransientIntegrationError, Unauthorized
from orchestrator.http.bodies import read_body
from orchestrator.logs import get_logger

AUTH_CACHE_SECONDS = 30.0
FORM = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024  # a subject token (a JWT of a few KB) and a few parameters
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
log = get_logger(__name__)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Refuse to start with a misconfigured credential provider; warm the key cache; follow revocations.

    With Redis, the revocation feed (pushed revocations into this process) runs for the app's life.
    """
    validate_providers()
    try:
        await run_in_threadpool(get_keyring().refresh)
    except Exception as exc:  # an unmigrated database must not stop the rest of the API starting
        log.warning("signing keys not loaded at start-up", error=str(exc))
    _freeze_startup_objects()
    feed = start_feed()
    try:
        yield
    finally:
        await run_in_threadpool(stop_feed, feed)


router = APIRouter(tags=["oauth"], lifespan=lifespan)
_frozen = False


def _freeze_startup_objects() -> None:
    # Move everything loaded at start-up out of the collector's sight, once per process: a full
    # collection walks every tracked object (~130k after start-up), a 40-100 ms pause on this
    # hardware that set the introspection p99 (bench/tokens.py) before this.
    global _frozen
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True


def oauth_error(request: Request, exc: OAuthError | PayloadTooLarge) -> JSONResponse:
    """The RFC 6749 error response for a refusal, logged once (401 ones carry a WWW-Authenticate challenge)."""
    error = exc if isinstance(exc, OAuthError) else OAuthError("invalid_request", exc.message, exc.status_code)
    # The description says what was wrong with the request; it never holds the token or the form.
    level = log.warning if error.status in (401, 413) or error.status >= 500 else log.info
    level("request refused", path=request.url.path, error=error.error, status=error.status, reason=error.description)
    headers = dict(_NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = f'Bearer error="{error.error}"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _form(request: Request) -> dict[str, list[str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        raise OAuthError("invalid_request", f"the body must be {FORM}")
    body = await read_body(request, MAX_FORM_BYTES)
    try:
        form = parse_qs(body.decode("utf-8"), max_num_fields=50, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not valid form data") from None
    for name, values in form.items():
        # No token, id or scope holds one; PostgreSQL would refuse a NUL further on (a 500).
        if control_character(name) or any(control_character(v) for v in values):
            field = "a parameter name" if control_character(name) else f"`{name}`"
            raise OAuthError("invalid_request", f"{field} contains a control character")
    return form


def _exchange(req: ExchangeRequest) -> dict[str, Any]:
    with session_scope() as session:
        return exchange(session, req, policy=get_policy())


@router.post("/oauth/token", response_model=None)
async def token(request: Request) -> JSONResponse:
    """RFC 8693 token exchange: a subject token for a short-lived token scoped to one micro-app."""
    try:
        req = ExchangeRequest.from_form(await _form(request))
        body = await run_in_threadpool(_exchange, req)
    except (OAuthError, PayloadTooLarge) as exc:
        return oauth_error(request, exc)
    except TransientIntegrationError as exc:
        return oauth_error(request, OAuthError("temporarily_unavailable", exc.message, 503))
    return JSONResponse(body, headers=_NO_STORE)


# digest of a caller's token → (until when it is trusted, the access version it was checked under)
_callers: dict[str, tuple[float, str]] = {}


def _check_caller(token: str) -> None:
    with session_scope(write=False) as session:
        authenticate(session, token)


async def _authenticate_caller(request: Request) -> None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise OAuthError("invalid_client", "authenticate with an orchestrator API token (Bearer)", 401)
    digest = hash_token(value)
    now = time.monotonic()
    versions = changes.access_version
    # The version is read at most every CHECK_SECONDS; only that read leaves the event loop.
    version = versions.current() if versions.fresh() else await run_in_threadpool(versions.current)
    until, checked_under = _callers.get(digest, (0.0, ""))
    if until > now and version is not None and checked_under == version:
        return
    try:
        await run_in_threadpool(_check_caller, value)
    except Unauthorized:
        _callers.pop(digest, None)
        raise OAuthError("invalid_client", "unknown or revoked API token", 401) from None
    if len(_callers) > 10_000:
        _callers.clear()
    if version is not None:
        _callers[digest] = (now + AUTH_CACHE_SECONDS, version)


@router.post("/oauth/introspect", response_model=None)
async def introspect_token(request: Request) -> JSONResponse:
    """RFC 7662: `active` and the claims of a token, `active: false` when expired, revoked or unknown."""
    try:
        await _authenticate_caller(request)
        tokens = (await _form(request)).get("token", [])
        if len(tokens) != 1 or not tokens[0]:
            raise OAuthError("invalid_request", "exactly one `token` is required")
    except (OAuthError, PayloadTooLarge) as exc:
        return oauth_error(request, exc)
    return JSONResponse(await introspect(tokens[0]), headers=_NO_STORE)


# Served past FastAPI's routing (orchestrator.http.app.Api): the gateway calls introspection for every
# request it lets through, and matching the API's routes was a measurable share of a call (issue 19).
FAST_LANE: dict[str, Callable[[Request], Awaitable[Response]]] = {"/oauth/introspect": introspect_token}


def _jwks() -> dict[str, Any]:
    ring = get_keyring()
    if ring.stale:
        ring.refresh()
    return {"keys": [key.jwk() for key in ring.published()]}


@router.get("/.well-known/jwks.json")
async def jwks() -> JSONResponse:
    """The public keys that verify the tokens this service issues (next, current and previous)."""
    body = await run_in_threadpool(_jwks)
    max_age = get_settings().jwks_max_age_seconds
    return JSONResponse(body, headers={"Cache-Control": f"public, max-age={max_age}"})


def forget_callers() -> None:
    """Drop the cache of authenticated introspection callers (tests)."""
    _callers.clear()
    changes.reset_access_version()
