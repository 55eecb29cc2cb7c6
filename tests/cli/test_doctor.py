"""`orchestrator doctor`, `GET /api/v1/health/invariants` and the health gauges of `/metrics`, on a real catalog."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner, Result

from orchestrator import invariants
from orchestrator.cli import build
from orchestrator.config import get_settings
from orchestrator.db import get_engine
from orchestrator.tasks import QUEUES
from schedules.engine import refresh_health_snapshot
from tests.factories import auth
from tests.test_invariants import production_app


def doctor(*args: str) -> Result:
    """Run `orchestrator doctor` in-process."""
    return CliRunner().invoke(build(), ["doctor", *args])


def plant_edited_audit_entry(reason: str = "edited") -> None:
    """Edit the app's registration entry in place, as someone with SQL access could."""
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE audit_entry SET reason = :r WHERE seq = 1"), {"r": reason})


def first_reason() -> str:
    """The reason of the first audit entry, as stored."""
    with get_engine().begin() as conn:
        return str(conn.execute(text("SELECT reason FROM audit_entry WHERE seq = 1")).scalar_one())


def test_doctor_on_a_clean_catalog_and_on_a_planted_violation(db_url: str) -> None:
    """Exit 0 and a one-line all-clear; then exit 1 with the app, the rule and the fix; --json has the same."""
    production_app()
    result = doctor()
    assert result.exit_code == 0, result.output
    assert f"all {len(invariants.RULES)} invariants hold" in result.stdout
    plant_edited_audit_entry()
    result = doctor()
    assert result.exit_code == 1
    assert "audit-chain-verifies" in result.stdout and "orchestrator audit verify" in result.stdout
    result = doctor("--json")
    assert result.exit_code == 1
    body = json.loads(result.stdout)
    assert body["ok"] is False and body["counts"]["audit-chain-verifies"] == 1
    assert "entry 1" in body["violations"][0]["detail"]
    assert doctor("--skip", "audit-chain-verifies").exit_code == 0
    result = doctor("--skip", "no-such-rule")
    assert result.exit_code == 2 and "unknown invariant rule" in result.stderr


def test_the_invariants_endpoint_is_admin_only_and_lists_violations(
    client: TestClient, make_token: Callable[..., str]
) -> None:
    """200 with ok/counts/violations for an admin, 403 for an approver."""
    production_app()
    admin = auth(make_token("admin", "admin@example.com"))
    assert (
        client.get("/api/v1/health/invariants", headers=auth(make_token("approver", "a@example.com"))).status_code
        == 403
    )
    answer = client.get("/api/v1/health/invariants", headers=admin)
    assert answer.status_code == 200 and answer.json()["ok"] is True
    plant_edited_audit_entry()
    body = client.get("/api/v1/health/invariants", headers=admin).json()
    assert body["ok"] is False
    assert [v["rule"] for v in body["violations"]] == ["audit-chain-verifies"]
    assert body["violations"][0]["fix"]


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported:\n{metrics}")


def test_metrics_computed_in_process_without_redis(client: TestClient) -> None:
    """Without Redis the API computes the gauges itself: every rule and operations gauge is there."""
    from orchestrator.http import health

    health._local.clear()
    production_app()
    plant_edited_audit_entry()
    metrics = client.get("/metrics").text
    assert _gauge(metrics, 'orchestrator_invariant_violations{rule="audit-chain-verifies"}') == 1
    assert _gauge(metrics, 'orchestrator_invariant_violations{rule="events-handled"}') == 0
    for name in ("outbox_lag_seconds", "events_parked", "events_failed", "notifications_sending"):
        assert _gauge(metrics, f"orchestrator_{name}") >= 0
    assert _gauge(metrics, "orchestrator_sunsets_blocked") == 0
    assert _gauge(metrics, "orchestrator_deadlines_overdue") == 0
    health._local.clear()


def test_the_scheduler_publishes_the_snapshot_the_api_exports(
    db_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler's refresh lands in Redis; /metrics exports it with the leader and the queue depths."""
    from orchestrator.http.app import create_app
    from orchestrator.http.health import _local

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("BROKER_URL", redis_url)
    get_settings.cache_clear()
    settings = get_settings()
    client = redis.Redis.from_url(redis_url)
    client.delete(invariants.SNAPSHOT_KEY, "ingest")
    production_app()
    original = first_reason()
    plant_edited_audit_entry()
    value = refresh_health_snapshot(settings, redis_url)
    assert value["violations"]["audit-chain-verifies"] == 1
    assert client.pttl(invariants.SNAPSHOT_KEY) > 0
    # The API reads the published snapshot, not the database: a repair shows only after the next refresh.
    plant_edited_audit_entry(original)
    client.set(f"{settings.scheduler_lock_name}:holder", "host:1:abc", px=60_000)
    client.delete(*QUEUES)  # what the test's own publishing left
    client.rpush("ingest", "m1", "m2")
    _local.clear()
    try:
        # The app's own after-commit publishing may still add a message to `ingest` meanwhile: the gauge
        # must show the depth as Redis had it around the scrape.
        depth_before = int(client.llen("ingest"))
        with TestClient(create_app()) as api:
            metrics = api.get("/metrics").text
        depth_after = int(client.llen("ingest"))
        assert _gauge(metrics, 'orchestrator_invariant_violations{rule="audit-chain-verifies"}') == 1
        assert _gauge(metrics, 'orchestrator_scheduler_leader{replica="host:1:abc"}') == 1
        assert 2 <= depth_before <= _gauge(metrics, 'orchestrator_celery_queue_depth{queue="ingest"}') <= depth_after
        assert _gauge(metrics, 'orchestrator_celery_queue_depth{queue="reviews"}') == 0
        assert _gauge(metrics, "orchestrator_health_snapshot_age_seconds") < 60
    finally:
        client.delete(invariants.SNAPSHOT_KEY, *QUEUES, f"{settings.scheduler_lock_name}:holder")
        client.close()


def test_doctor_passes_on_the_demo(tmp_path: Path) -> None:
    """`orchestrator migrate`, `orchestrator demo`, then `orchestrator doctor` exits 0, as run by a new user."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'orchestrator.db'}",
        "DATA_DIR": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    for step in (("migrate",), ("demo",)):
        done = cli(*step)
        assert done.returncode == 0, done.stdout + done.stderr
    result = cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"all {len(invariants.RULES)} invariants hold" in result.stdout
