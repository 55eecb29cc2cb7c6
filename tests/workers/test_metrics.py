"""Worker task metrics: a real prefork worker with WORKER_METRICS_PORT counts the tasks its children run."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from bench.harness import free_port, start_worker, wait_until
from orchestrator.config import get_settings
from orchestrator.tasks import TaskName, send
from tests.helpers.slack import quiet_redis_db


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def test_a_prefork_worker_exports_its_task_counts(
    sqlite_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two tasks run in the pool's children; the main process serves their sum by task, queue and state."""
    broker = quiet_redis_db(redis_url)
    monkeypatch.setenv("BROKER_URL", broker)
    get_settings.cache_clear()
    port = free_port()
    env = {"DATABASE_URL": sqlite_url, "BROKER_URL": broker, "WORKER_METRICS_PORT": str(port)}
    worker = start_worker(env=env, log_path=tmp_path / "worker.log", queues="notifications", concurrency=2)
    try:
        send(TaskName.sweep_notifications)
        send(TaskName.sweep_notifications)
        line = (
            'orchestrator_celery_tasks_total{queue="notifications",state="succeeded",'
            'task="workers.sweep_notifications"} 2.0'
        )
        wait_until(lambda: worker.log().count("succeeded in") >= 2, timeout=60, what="two tasks succeeded")
        wait_until(lambda: line in _scrape(port), timeout=10, what="two succeeded tasks counted")
        assert 'state="started",task="workers.sweep_notifications"} 2.0' in _scrape(port)
    finally:
        worker.stop()
