"""Maps every error to a JSON body `{"error": code, "detail": ...}`; no traceback reaches a client.

This is the one place a refusal is answered and logged: an endpoint raises PayloadTooLarge (413),
SignatureInvalid (401) or MalformedPayload (400) from `orchestrator.errors` and the handler here
writes the body and one `request refused` log line (code and reason; never a secret or the body).
A database that cannot be reached (connection refused or lost, pool exhausted) is a 503 with
`Retry-After`, not a 500: the request was fine and will succeed once the database is back.
The OAuth endpoints answer in RFC 6749's shape instead (`orchestrator.http.oauth.oauth_error`).

Field errors are `{"field": name, "in": body|query|path|header, "reason": why}`; the input value is
never echoed back (it may hold a secret).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import IntegrationError, OrchestratorError
from orchestrator.logs import get_logger

log = get_logger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}
# Statuses that refuse a request outright (size, credentials, signature, unparseable body): logged once here.
_REFUSALS = frozenset({400, 401, 403, 413})
_LOCATIONS = ("body", "query", "path", "header", "cookie")
# A database outage is the server's trouble but a passing one: 503 and a hint when to come back.
DATABASE_RETRY_AFTER_SECONDS = 5
_SQLITE_BUSY = ("database is locked", "unable to open database file", "disk i/o error")


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` means the database cannot be reached right now (rather than a bad statement).

    That is: no connection could be made (the error carries no statement), the connection died under
    the statement, the pool had none to give, or SQLite's file is locked or cannot be opened.
    A missing table or a bad query is an OperationalError too in SQLite: those stay a 500.
    """
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True
    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return exc.statement is None or str(exc.orig).lower().startswith(_SQLITE_BUSY)
    return False


class UnsupportedMediaType(OrchestratorError):
    """The request body's content type is not one the endpoint reads."""

    code = "unsupported_media_type"
    status_code = 415


def error_body(code: str, detail: Any) -> dict[str, Any]:
    """The one error shape of the API."""
    return {"error": code, "detail": detail}


def field_error(field: str, reason: str, where: str = "body") -> dict[str, str]:
    """One entry of a field-error list."""
    return {"field": field, "in": where, "reason": reason}


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = loc.pop(0) if loc and loc[0] in _LOCATIONS else "body"
        out.append(field_error(".".join(loc) or "(body)", str(err.get("msg", "invalid")), where))
    return out


def _malformed_json(exc: RequestValidationError) -> dict[str, str] | None:
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            reason = str((err.get("ctx") or {}).get("error") or err.get("msg") or "invalid JSON")
            return field_error("(body)", f"not valid JSON: {reason}")
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers for our errors, validation errors, HTTP errors and anything unexpected."""

    @app.exception_handler(OrchestratorError)
    async def _ours(request: Request, exc: OrchestratorError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if exc.status_code in _REFUSALS:
            # Every refusal leaves one trace; the credential or body itself is never logged.
            log.warning("request refused", path=request.url.path, error=exc.code, reason=exc.message)
        if exc.status_code >= 500 and not isinstance(exc, IntegrationError):
            # A ConfigError or a bare OrchestratorError here is our bug: log it, tell the client nothing.
            log.error("internal error", path=request.url.path, error=exc.code, reason=exc.message)
            return JSONResponse(error_body("internal_error", "an internal error occurred; it has been logged"), 500)
        return JSONResponse(error_body(exc.code, exc.detail), status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        malformed = _malformed_json(exc)
        if malformed is not None:
            return JSONResponse(error_body("malformed_body", [malformed]), status_code=400)
        return JSONResponse(error_body("validation_error", _field_errors(exc)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(_HTTP_CODES.get(exc.status_code, "http_error"), exc.detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def _database_error(request: Request, exc: Exception) -> JSONResponse:
        if not database_unreachable(exc):
            raise exc  # our bug, not an outage: the observing middleware logs it with its traceback (a 500)
        # The driver's message names hosts and sometimes more: log its kind only, tell the client to retry.
        kind = type(getattr(exc, "orig", None) or exc).__name__
        log.error("database unavailable", path=request.url.path, error=type(exc).__name__, kind=kind)
        return JSONResponse(
            error_body("database_unavailable", "the database cannot be reached; retry shortly"),
            status_code=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )

    app.add_exception_handler(sa_exc.DBAPIError, _database_error)
    app.add_exception_handler(sa_exc.TimeoutError, _database_error)
    app.add_exception_handler(sa_exc.DisconnectionError, _database_error)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Normally ObserveMiddleware answers first; this covers anything raised outside it.
        log.error("unhandled error", path=request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal_error", "an internal error occurred; it has been logged"), 500)
