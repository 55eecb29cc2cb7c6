"""Maps every error to a JSON body `{"error": code, "detail": ...}`; no traceback reaches a client."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import OrchestratorError
from orchestrator.logs import get_logger

log = get_logger(__name__)


def error_body(code: str, detail: Any) -> dict[str, Any]:
    """The one error shape of the API."""
    return {"error": code, "detail": detail}


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        out.append({"field": ".".join(loc) or "(body)", "reason": str(err.get("msg", "invalid"))})
    return out


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers for our errors, validation errors, HTTP errors and anything unexpected."""

    @app.exception_handler(OrchestratorError)
    async def _ours(request: Request, exc: OrchestratorError) -> JSONResponse:
        if exc.status_code in (401, 403):
            log.warning("request refused", path=request.url.path, error=exc.code, reason=exc.message)
        return JSONResponse(error_body(exc.code, exc.detail), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body("validation_error", _field_errors(exc)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden", 413: "too_large"}
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), exc.detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", path=request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal_error", "an internal error occurred; it has been logged"), 500)
