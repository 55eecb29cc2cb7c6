"""The KPI gauges of /metrics: computed by the scheduler's job into Redis, read (not computed) per scrape."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from orchestrator.catalog.policy import get_policy
from orchestrator.clock import frozen_at
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.http import kpis as http_kpis
from orchestrator.http.app import create_app
from orchestrator.kpis import gauges, service
from orchestrator.kpis.stats import Scope
from schedules.engine import refresh_kpi_snapshot
from schedules.jobs import JOBS
from tests.kpis import history
from tests.kpis.history import NOW, D


def _gauge(metrics: str, name: str) -> float | None:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture
def local_cache() -> Iterator[None]:
    """The API's in-process snapshot, emptied before and after."""
    http_kpis._local.clear()
    yield
    http_kpis._local.clear()


def test_the_refresh_job_is_declared() -> None:
    """The scheduler runs the refresh on its own interval setting, at start too."""
    job = next(j for j in JOBS if j.id == "refresh-kpi-metrics")
    assert (job.method, job.interval_setting, job.run_at_start) == ("refresh_kpis", "kpi_metrics_seconds", True)


def test_the_scheduler_publishes_the_snapshot_the_api_exports(
    db_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, local_cache: None
) -> None:
    """The job's snapshot lands in Redis; a scrape exports it as it is, even after the catalog changed."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(redis_url)
    client.delete(gauges.SNAPSHOT_KEY)
    history.build()
    try:
        with frozen_at(NOW):
            value = refresh_kpi_snapshot(settings, redis_url)
        assert value is not None
        assert client.pttl(gauges.SNAPSHOT_KEY) > 0
        with session_scope(write=False) as session:  # the same window, straight from the service
            expected = {
                f.id: f for f in service.report(session, Scope(NOW - 30 * D, NOW), policy=get_policy(), now=NOW)
            }
        assert value["kpis"]["onboarded_share"] == {"value": 0.5, "count": 8}  # alpha, beta, eps, zeta of eight
        assert value["kpis"]["time_to_production"]["value"] == expected["time_to_production"].value
        # A new registration after the refresh: the scrape still shows the snapshot (no computation per scrape).
        history.register("late", "public", "ops", "maker9@example.com", NOW)
        with TestClient(create_app()) as api:
            metrics = api.get("/metrics").text
        assert _gauge(metrics, 'orchestrator_kpi{kpi="onboarded_share",window_days="30"}') == 0.5
        assert _gauge(metrics, 'orchestrator_kpi_count{kpi="onboarded_share",window_days="30"}') == 8
        assert _gauge(metrics, 'orchestrator_kpi{kpi="finding_revocations",window_days="30"}') == 1
        assert _gauge(metrics, 'orchestrator_kpi_count{kpi="finding_revocations",window_days="30"}') == 1
        age = _gauge(metrics, "orchestrator_kpi_snapshot_age_seconds")
        assert age is not None and age > 0  # taken at NOW, in March
    finally:
        client.delete(gauges.SNAPSHOT_KEY)
        client.close()


def test_without_redis_the_api_computes_the_gauges_once_per_interval(client: TestClient, local_cache: None) -> None:
    """Embedded setup: the first scrape computes, the next ones reuse it until the interval is over."""
    history.register("first", "public", "ops", "maker9@example.com", history.T0)
    metrics = client.get("/metrics").text
    assert _gauge(metrics, 'orchestrator_kpi_count{kpi="orphan_rate",window_days="30"}') == 1
    history.register("second", "public", "ops", "maker9@example.com", history.T0)
    metrics = client.get("/metrics").text
    assert _gauge(metrics, 'orchestrator_kpi_count{kpi="orphan_rate",window_days="30"}') == 1
