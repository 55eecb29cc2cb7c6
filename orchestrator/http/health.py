"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from orchestrator.config import get_settings
from orchestrator.db import session_scope

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _check_database() -> str | None:
    try:
        with session_scope(write=False) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
    except Exception as exc:  # any driver error means "not ready"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def _check_broker() -> str | None:
    from kombu import Connection

    try:
        with Connection(get_settings().broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any transport error means "not ready"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else 'unreachable'}"
    return None


@router.get("/readyz")
def readyz() -> Any:
    """Database and broker reachable (200), or 503 naming the failing part."""
    checks = {"database": _check_database(), "broker": _check_broker()}
    failing = {name: err for name, err in checks.items() if err}
    if failing:
        return JSONResponse({"error": "not_ready", "detail": failing}, status_code=503)
    return {"status": "ready", "checks": dict.fromkeys(checks, "ok")}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
