"""Liveness, readiness and Prometheus metrics.

`/readyz` checks the database and the broker side by side, each bounded by a timeout so a probe
never hangs on a black-holed host, and names every failing part in a 503.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.logs import get_logger

router = APIRouter(tags=["health"])
log = get_logger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0
# Threads, not the event loop: a driver stuck in connect() must not block other requests.
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readyz")
_USERINFO_RE = re.compile(r"(\w+://)[^@/\s]+@")
_MASK = r"\1***@"


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0][:200] or "unreachable"
    # Never show a password that a driver put into its message.
    return f"{type(exc).__name__}: {_USERINFO_RE.sub(_MASK, first)}"


def check_database() -> None:
    """Raise unless the catalog database answers a trivial query."""
    with session_scope(write=False) as session:
        session.execute(text("SELECT 1"))


def check_broker() -> None:
    """Raise unless the Celery broker accepts a connection."""
    from kombu.connection import Connection

    broker = Connection(get_settings().broker_url, connect_timeout=CHECK_TIMEOUT_SECONDS)
    with broker as conn:
        # max_retries=0: one attempt; kombu's retry loop would sleep seconds between tries.
        # kombu's stub types `timeout` as int; kombu compares it with float clock readings, so a float is right.
        conn.ensure_connection(max_retries=0, timeout=CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]


CHECKS: dict[str, Callable[[], None]] = {"database": check_database, "broker": check_broker}


def run_checks() -> dict[str, str | None]:
    """Run every readiness check concurrently; None for a passing one, else why it failed."""
    futures = {name: _pool.submit(check) for name, check in CHECKS.items()}
    results: dict[str, str | None] = {}
    for name, future in futures.items():
        try:
            future.result(timeout=CHECK_TIMEOUT_SECONDS + 0.5)
            results[name] = None
        except FutureTimeout:
            results[name] = f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
        except Exception as exc:  # any driver or transport error means "not ready"
            results[name] = _describe(exc)
    return results


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Some part is unreachable; detail names each one"}})
def readyz() -> Any:
    """Database and broker reachable (200), or 503 naming the failing part(s)."""
    results = run_checks()
    failing = {name: why for name, why in results.items() if why}
    if failing:
        log.warning("not ready", failing=failing)
        return JSONResponse({"error": "not_ready", "detail": failing}, status_code=503)
    return {"status": "ready", "checks": dict.fromkeys(results, "ok")}


@router.get("/metrics", include_in_schema=False)
def metrics() -> Response:
    """Prometheus exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
