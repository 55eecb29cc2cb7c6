"""The KPI gauges of `/metrics`: a snapshot computed on a timer, never per scrape.

The leading scheduler computes the report over the last KPI_METRICS_WINDOW_DAYS every
KPI_METRICS_SECONDS (`schedules.jobs`, job `refresh-kpi-metrics`) and leaves it in Redis for three
intervals; each API process reads it with one GET per scrape. Without Redis (the embedded setup) the
API computes it itself, at most once per interval (orchestrator.http.kpis).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session

from orchestrator import redis_snapshots
from orchestrator.catalog.policy import Policy
from orchestrator.clock import utcnow
from orchestrator.kpis import service
from orchestrator.kpis.stats import Scope

SNAPSHOT_KEY = "orchestrator:kpis:snapshot"


def snapshot(session: Session, *, policy: Policy, window_days: int) -> dict[str, Any]:
    """Every KPI's headline value and count over the last `window_days`, as JSON-ready data."""
    now = utcnow()
    scope = Scope(now - timedelta(days=window_days), now)
    figures = service.report(session, scope, policy=policy, now=now)
    return {
        "at": now.isoformat(),
        "window_days": window_days,
        "kpis": {f.id: {"value": f.value, "count": f.count} for f in figures},
    }


def publish(redis_url: str, value: dict[str, Any], *, ttl_seconds: float) -> None:
    """Leave the snapshot in Redis for the API processes; it lapses if the scheduler stops refreshing it."""
    redis_snapshots.publish(redis_url, SNAPSHOT_KEY, value, ttl_seconds=ttl_seconds)


def load(redis_url: str) -> dict[str, Any] | None:
    """The snapshot the scheduler published last, or None when there is none (or it lapsed)."""
    return redis_snapshots.load(redis_url, SNAPSHOT_KEY)
