"""A sunset whose worker died resumes within a minute (an expired lease), and a live lease is never run twice."""

from __future__ import annotations

import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bench.harness import Proc, spawn, start_worker, wait_until
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.sunset.models import SunsetRun, SunsetStatus, SunsetStep
from tests.helpers.timers import add_credential, audit_actions, make_app


def _run(app_id: str) -> SunsetRun:
    with session_scope(write=False) as session:
        return session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).one()


def _start(app_id: str) -> None:
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.sunset import flows as sunset

    with session_scope() as session:
        row = catalog.get_app(session, app_id)
        catalog.apply_action(session, row, Action.retire, actor="admin@example.com", reason="t", policy=get_policy())
        sunset.start_sunset(session, row, trigger="manual", actor="admin@example.com", reason="lease drill")


@pytest.mark.redis
@pytest.mark.slow
def test_a_killed_sunset_worker_is_resumed_within_a_minute(
    sqlite_url: str,
    private_redis: str,
    timer_settings: dict[str, str],
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    """With the default lease and sweep settings a run whose worker was SIGKILLed is done within 60 s."""
    from orchestrator.config import get_settings

    env = {
        **{k: v for k, v in timer_settings.items() if not k.startswith("SUNSET_")},
        "DATABASE_URL": sqlite_url,
        "BROKER_URL": private_redis,
        "REDIS_URL": private_redis,
        "SCHEDULER_LOCK_TTL_SECONDS": "3",
        "SCHEDULER_LOCK_NAME": f"test-lock-{uuid.uuid4().hex[:8]}",
        "DEADLINE_NUDGE_CHANNEL": f"test-nudge-{uuid.uuid4().hex[:8]}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    slow = {**env, "SUNSET_STEP_PAUSE_SECONDS": "3"}
    app = make_app(stage=Stage.production, expires_at=None)
    add_credential(app.id, provider="builtin-service")
    first = start_worker(env=slow, log_path=tmp_path / "w1.log", queues="sunset", concurrency=1)
    _start(app.id)
    wait_until(lambda: _run(app.id).step is SunsetStep.revoke, timeout=30, what="freeze done")
    first.kill()  # mid-run: its message is never acked and its lease is no longer renewed
    killed = utcnow()
    procs: list[Proc] = [
        start_worker(env=slow, log_path=tmp_path / "w2.log", queues="sunset", concurrency=1),
        spawn([sys.executable, "-m", "orchestrator.cli", "scheduler"], env=slow, log_path=tmp_path / "sched.log"),
    ]
    try:
        wait_until(lambda: _run(app.id).status is SunsetStatus.done, timeout=75, what="the resumed sunset done")
    finally:
        for proc in procs:
            proc.stop()
    done = _run(app.id).finished_at
    assert done is not None and done.replace(tzinfo=killed.tzinfo) - killed < timedelta(seconds=60)
    actions = audit_actions(app.id)
    for step in ("sunset.freeze", "sunset.revoke", "sunset.archive", "sunset.retire"):
        assert actions.count(step) == 1, (step, actions)


def test_a_live_lease_is_not_resumed_and_not_run_twice(sqlite_url: str, tmp_path: Path, monkeypatch: Any) -> None:
    """The sweep lists a run only when its lease expired; a second worker skips a run under a live lease."""
    from orchestrator.config import get_settings
    from orchestrator.sunset import flows as sunset

    monkeypatch.setenv("ARCHIVE_URL", str(tmp_path / "archive"))
    get_settings.cache_clear()
    app = make_app(stage=Stage.production, expires_at=None)
    _start(app.id)
    lease, blocked = timedelta(seconds=30), timedelta(minutes=5)
    now = utcnow()
    with session_scope() as session:
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app.id)).one()
        run.lease_until, run.updated_at = now + timedelta(seconds=20), now - timedelta(hours=1)
        session.add(run)
    with session_scope(write=False) as session:
        assert sunset.stalled_runs(session, now=now, lease=lease, blocked_idle=blocked) == []
    skipped = sunset.advance(app.id, respect_lease=True)
    assert skipped.step is SunsetStep.freeze and _run(app.id).attempts == 0, "live work is not run twice"
    with session_scope() as session:
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app.id)).one()
        run.lease_until = now - timedelta(seconds=1)
        session.add(run)
    with session_scope(write=False) as session:
        assert sunset.stalled_runs(session, now=now, lease=lease, blocked_idle=blocked) == [app.id]
    assert sunset.advance(app.id, respect_lease=True).status is SunsetStatus.done
    assert _run(app.id).lease_until is None
