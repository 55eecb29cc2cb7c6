"""Per-request logging context and Prometheus request metrics."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from fastapi import FastAPI, Request, Response
from prometheus_client import Counter, Histogram

from orchestrator.logs import get_logger

REQUESTS = Counter("orchestrator_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "orchestrator_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
log = get_logger("orchestrator.http")


def install_middleware(app: FastAPI) -> None:
    """Bind a request id (and the app id in the path) to every log line; count and time requests."""

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        path_params = request.scope.get("path_params") or {}
        if "app_id" in path_params:
            structlog.contextvars.bind_contextvars(app_id=path_params["app_id"])
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["x-request-id"] = request_id
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - start
            REQUESTS.labels(request.method, template, str(status)).inc()
            LATENCY.labels(request.method, template).observe(elapsed)
            if template not in ("/healthz", "/metrics"):
                log.info("request", method=request.method, path=template, status=status, ms=round(elapsed * 1000, 2))
            structlog.contextvars.clear_contextvars()
