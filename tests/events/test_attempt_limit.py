"""EVENT_MAX_ATTEMPTS bounds the runs of a handler that kills its worker, the uncounted first run included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.harness import Proc, start_worker, wait_until
from orchestrator.events.models import EventStatus
from tests.events import probe_vocabulary
from tests.events.helpers import events

probe_vocabulary.allow()  # this process emits the probe event types

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session's Redis database, emptied before and after, set as BROKER_URL in this process too."""
    from orchestrator.config import get_settings

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    monkeypatch.setenv("BROKER_URL", redis_url)
    get_settings.cache_clear()
    yield redis_url
    client.flushdb()


def _runs(probe_dir: Path, event_id: str) -> int:
    path = probe_dir / "runs"
    lines = path.read_text().splitlines() if path.exists() else []
    return sum(1 for line in lines if line.split()[0] == event_id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_worker_killing_handler_runs_at_most_max_attempts_times(
    db_url: str, broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With EVENT_MAX_ATTEMPTS=3 the crashing handler runs 3 times (not 4) and the event is parked."""
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    env = {
        "DATABASE_URL": db_url,
        "BROKER_URL": broker,
        "EVENT_HANDLER_MODULES": "tests.events.probe_handlers",
        "PROBE_DIR": str(probe_dir),
        "EVENT_MAX_ATTEMPTS": "3",
        "RELAY_STALE_AFTER_SECONDS": "600",
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
    }
    worker: Proc = start_worker(env=env, log_path=tmp_path / "worker.log", concurrency=1)
    try:
        with session_scope() as session:
            crash = emit(session, type="test.crash", source="test", payload={}).event.id
        wait_until(
            lambda: events(id=crash)[0].status == EventStatus.parked, timeout=90, what="the worker-killing event parked"
        )
    finally:
        worker.stop()
    assert _runs(probe_dir, crash) == 3, "EVENT_MAX_ATTEMPTS runs, the first (uncounted) one included"
    assert "gave up after 3 runs" in (events(id=crash)[0].last_error or "")
