"""Liveness, readiness, the lifecycle invariants and Prometheus metrics.

`/readyz` checks the database and the broker side by side, each bounded by a timeout so a probe
never hangs on a black-holed host, and names every failing part in a 503.

`GET /api/v1/health/invariants` (admin) runs the invariant rules (orchestrator.invariants) against the
live database, on demand. `/metrics` exports them as gauges with the pipeline's health (outbox lag,
parked and failed events, notifications stuck in `sending`, blocked sunsets, overdue deadlines), the
scheduler leader and the Celery queue depths. Running every rule walks the audit chain, too costly
per scrape: the leading scheduler computes the snapshot every HEALTH_METRICS_SECONDS and leaves it
in Redis, where each scrape reads it with one GET. Without Redis (the embedded single-machine setup)
the API computes it itself, at most once per that interval.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from orchestrator import broker_config, invariants
from orchestrator.auth.models import Role
from orchestrator.clock import utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.db import session_scope
from orchestrator.http.deps import ReadSession, role_at_least
from orchestrator.http.snapshots import LocalSnapshot
from orchestrator.logs import get_logger
from orchestrator.tasks import QUEUES

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


@router.get("/api/v1/health/invariants", dependencies=[role_at_least(Role.admin)])
def health_invariants(session: ReadSession) -> dict[str, Any]:
    """Every invariant violation now (the app, the rule, what is wrong, the fix), and the count per rule."""
    found = invariants.check_all(session)
    return {
        "ok": not found,
        "counts": invariants.counts(found),
        "violations": [v.as_dict() for v in found],
    }


# ---------------------------------------------------------------- gauges

_DEFAULT_REFRESH_SECONDS = 60.0
_OPERATION_HELP = {
    "outbox_lag_seconds": "Age of the oldest event not yet handed to the broker",
    "events_parked": "Events parked as poison",
    "events_failed": "Events that failed for good",
    "notifications_sending": "Notifications in sending (a post that may or may not have reached Slack)",
    "sunsets_blocked": "Sunset runs blocked on a credential that could not be revoked",
    "deadlines_overdue": "Pending deadlines more than a minute past due",
}


def _compute_snapshot() -> dict[str, Any]:
    with session_scope(write=False) as session:
        return invariants.snapshot(session)


_local = LocalSnapshot(_compute_snapshot)


def current_snapshot(settings: Settings) -> dict[str, Any]:
    """The scheduler's snapshot from Redis when there is one, else one computed here (cached)."""
    url = settings.effective_redis_url
    if url and settings.health_metrics_seconds > 0:
        published = invariants.load_snapshot(url)
        if published is not None:
            return published
    return _local.get(settings.health_metrics_seconds or _DEFAULT_REFRESH_SECONDS)


def _redis_client(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


class HealthCollector(Collector):
    """Yields the invariant, operations, leader and queue gauges at each scrape (never raises)."""

    def describe(self) -> Iterator[Metric]:
        # Nothing: without it the registry would call collect() at registration, i.e. run the
        # snapshot's queries while the API starts (a minute on a 100,000-app catalog).
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """The gauges; a part that cannot be read is left out and counted in the errors gauge."""
        settings = get_settings()
        errors = GaugeMetricFamily(
            "orchestrator_health_collect_errors", "Parts of the health gauges that could not be read this scrape",
            labels=["part"],
        )  # fmt: skip
        try:
            yield from self._snapshot(settings)
        except Exception as exc:
            log.warning("health gauges unavailable", error=_describe(exc))
            errors.add_metric(["snapshot"], 1)
        url = settings.effective_redis_url
        if url:
            try:
                yield from self._redis_parts(settings, url)
            except Exception as exc:
                log.warning("redis gauges unavailable", error=_describe(exc))
                errors.add_metric(["redis"], 1)
        yield errors

    def _snapshot(self, settings: Settings) -> Iterator[Metric]:
        snap = current_snapshot(settings)
        rules = GaugeMetricFamily(
            "orchestrator_invariant_violations", "Violations of each lifecycle invariant (orchestrator doctor)",
            labels=["rule"],
        )  # fmt: skip
        for rule, count in sorted(snap["violations"].items()):
            rules.add_metric([rule], float(count))
        yield rules
        for name, value in snap["operations"].items():
            yield GaugeMetricFamily(f"orchestrator_{name}", _OPERATION_HELP.get(name, name), value=float(value))
        taken = datetime.fromisoformat(snap["at"])
        yield GaugeMetricFamily(
            "orchestrator_health_snapshot_age_seconds", "Age of the snapshot these gauges come from",
            value=max(0.0, (utcnow() - taken).total_seconds()),
        )  # fmt: skip

    def _redis_parts(self, settings: Settings, url: str) -> Iterator[Metric]:
        client = _redis_client(url)
        try:
            holder = client.get(f"{settings.scheduler_lock_name}:holder")
            leader = GaugeMetricFamily(
                "orchestrator_scheduler_leader", "1 for the scheduler replica holding the leader lock",
                labels=["replica"],
            )  # fmt: skip
            if holder:
                leader.add_metric([holder.decode() if isinstance(holder, bytes) else str(holder)], 1)
            yield leader
            if settings.broker_url.startswith(("redis://", "rediss://")):
                broker = client if settings.broker_url == url else _redis_client(settings.broker_url)
                depth = GaugeMetricFamily(
                    "orchestrator_celery_queue_depth", "Messages waiting in each broker queue", labels=["queue"]
                )
                for queue in QUEUES:
                    depth.add_metric([queue], float(broker.llen(queue)))
                yield depth
            elif broker_config.is_amqp(settings.broker_url):
                yield from _amqp_depths(settings.broker_url)
        finally:
            client.close()


def _amqp_depths(broker_url: str) -> Iterator[Metric]:
    """RabbitMQ's ready messages per task queue, and in the dead-letter queue (nothing when it does not answer)."""
    try:
        depths = broker_config.queue_depths(broker_url, QUEUES)
    except Exception as exc:  # a scrape never fails for the broker: /readyz reports it
        log.warning("RabbitMQ queue depths unavailable", error=_describe(exc))
        return
    depth = GaugeMetricFamily(
        "orchestrator_celery_queue_depth", "Messages waiting in each broker queue", labels=["queue"]
    )
    for queue, count in depths.items():
        depth.add_metric([queue], float(count))
    yield depth


_registered = False


def register_collector() -> None:
    """Add the health gauges to the process's default registry (idempotent)."""
    global _registered
    if not _registered:
        REGISTRY.register(HealthCollector())
        _registered = True
