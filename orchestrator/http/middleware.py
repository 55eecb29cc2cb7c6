"""Per-request logging context, Prometheus request metrics, and the last line of defence for errors.

A plain ASGI middleware rather than `@app.middleware("http")`: it runs in the request's own task,
so it sees the route FastAPI matched, and it catches any exception that escaped the handlers to
answer the generic 500 body itself (logged once, with the request id; no traceback to the client).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.documents import control_character
from orchestrator.logs import get_logger, request_context

REQUESTS = Counter("orchestrator_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "orchestrator_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
log = get_logger("orchestrator.http")

# Label values must stay a small set: unknown methods and unmatched paths are folded together.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_QUIET_ROUTES = frozenset({"/healthz", "/metrics", "/readyz"})
# (method, route, status) → its request counter and latency histogram: `labels()` takes a lock and
# builds its key on every call, a measurable share of a hot endpoint's CPU (issue 19). Routes are
# templates, so the set stays small.
_metrics: dict[tuple[str, str, int], tuple[Any, Any]] = {}
# A caller's X-Request-Id is reused only when it is short and plain, so it cannot forge log content.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def internal_error_body(request_id: str) -> dict[str, Any]:
    """The one body a client sees for an unexpected failure."""
    detail = f"an internal error occurred; it has been logged (request {request_id})"
    return {"error": "internal_error", "detail": detail}


def url_refusal(scope: Scope) -> dict[str, str] | None:
    """The field error for a control character (NUL included) in the URL's path or query, else None.

    Checked before routing, for every endpoint at once: such a value can only be a mistake or an
    attack, and PostgreSQL refuses NUL in text, which would otherwise surface as a 500.
    """
    path = str(scope.get("path", ""))
    if control_character(path):
        return {"field": "(path)", "in": "path", "reason": "contains a control character"}
    query = bytes(scope.get("query_string", b"")).decode("latin-1")
    if not control_character(query) and "%" not in query:
        return None
    for name, value in parse_qsl(query, keep_blank_values=True):
        if control_character(name) or control_character(value):
            field = name if not control_character(name) else "(query)"
            return {"field": field, "in": "query", "reason": "contains a control character"}
    return None


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if _REQUEST_ID_RE.match(candidate):
                return candidate
    return random_uuid4_hex()


def random_uuid4_hex() -> str:
    """`uuid.uuid4().hex` (the same 122 random bits, version and variant) without building a UUID: ~3× cheaper."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


class ObserveMiddleware:
    """Bind a request id to every log line, time and count requests, turn stray exceptions into a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        state = {"status": 500, "started": False}

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        with request_context(request_id=request_id) as ctx:
            start = time.perf_counter()
            try:
                refusal = url_refusal(scope)
                if refusal is not None:
                    # The value itself is never logged: only where it was.
                    log.warning("request refused", error="bad_request", field=refusal["field"], where=refusal["in"])
                    await _send_json(_send, 400, {"error": "bad_request", "detail": [refusal]})
                    return
                await self.app(scope, receive, _send)
            except Exception as exc:
                log.error("unhandled error", path=scope.get("path"), exc_info=exc, **ctx)
                if state["started"]:
                    raise
                await _send_json(_send, 500, internal_error_body(request_id))
            finally:
                self._observe(scope, int(state["status"]), time.perf_counter() - start, ctx)

    @staticmethod
    def _observe(scope: Scope, status: int, elapsed: float, ctx: dict[str, Any]) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        # Routing has filled in the path parameters by now; any route with {app_id} gets it on its line.
        app_id = (scope.get("path_params") or {}).get("app_id")
        if app_id and "app_id" not in ctx:
            ctx["app_id"] = app_id
        method = scope.get("method", "GET") if scope.get("method") in _METHODS else "OTHER"
        metrics = _metrics.get((method, route, status))
        if metrics is None:
            metrics = _metrics[method, route, status] = (REQUESTS.labels(method, route, str(status)),
                                                         LATENCY.labels(method, route))  # fmt: skip
        metrics[0].inc()
        metrics[1].observe(elapsed)
        # Asked first: a line below the level still cost the building of its event (~10 % of a hot
        # endpoint's CPU at LOG_LEVEL=WARNING) before structlog's level filter dropped it.
        if (route not in _QUIET_ROUTES or status >= 400) and log.isEnabledFor(logging.INFO):
            # The proxy's bound logger (structlog caches it on first use): one attribute lookup less.
            log.bind().info("request", method=method, path=route, status=status, ms=round(elapsed * 1000, 2), **ctx)


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def install_middleware(app: FastAPI) -> None:
    """Wrap the app in the observing middleware (outermost of ours, inside Starlette's error guard)."""
    app.add_middleware(ObserveMiddleware)
