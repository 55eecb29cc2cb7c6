"""WORKER_WARM_REVIEWS (what `orchestrator up` sets): a real worker's processes load the review checks'
advisory index as they start, before any review, so the first push after start-up does not wait for it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.harness import start_worker, wait_until


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_warm_worker_builds_the_advisory_index_before_any_review(db_url: str, tmp_path: Path) -> None:
    """In a data directory that has no advisory cache yet, the worker builds it with no task sent."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        "DATABASE_URL": db_url,
        "BROKER_URL": f"sqla+sqlite:///{tmp_path / 'broker.db'}",
        "DATA_DIR": str(data_dir),
        "WORKER_WARM_REVIEWS": "true",
    }
    cache = data_dir / "advisories" / "cache"
    worker = start_worker(env=env, log_path=tmp_path / "worker.log", queues="reviews", concurrency=1)
    try:
        wait_until(lambda: cache.is_dir() and any(cache.glob("*.json")), timeout=120, what="the advisory index cached")
        assert "Traceback" not in worker.log()
    finally:
        worker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
