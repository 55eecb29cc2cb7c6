"""Real processes on Redis: scheduler + worker end to end, HA takeover after SIGKILL, a killed sunset worker."""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from bench.harness import Proc, spawn, start_worker, wait_until
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.sunset.models import ArchiveRecord, SunsetRun, SunsetStatus, SunsetStep
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import Deadline, DeadlineStatus
from tests.helpers.timers import add_credential, audit_actions

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def env(
    sqlite_url: str, private_redis: str, redis_client: Any, timer_settings: dict[str, str], monkeypatch: Any
) -> dict[str, str]:
    """Settings shared by this process and the children: SQLite file, Redis broker/locks, short timers."""
    from orchestrator.config import get_settings

    values = {
        **timer_settings,
        "DATABASE_URL": sqlite_url,
        "BROKER_URL": private_redis,
        "REDIS_URL": private_redis,
        "SCHEDULER_POLL_SECONDS": "0.5",
        "SCHEDULER_SWEEP_SECONDS": "2",
        "SCHEDULER_LOCK_TTL_SECONDS": "3",
        "SCHEDULER_LOCK_NAME": f"test-lock-{uuid.uuid4().hex[:8]}",
        "DEADLINE_NUDGE_CHANNEL": f"test-nudge-{uuid.uuid4().hex[:8]}",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return values


def _scheduler(env: dict[str, str], log_path: Path) -> Proc:
    return spawn([sys.executable, "-m", "orchestrator.cli", "scheduler"], env=env, log_path=log_path)


def _leading(proc: Proc) -> bool:
    return '"scheduler leading"' in proc.log()


def _status(deadline_id: int) -> DeadlineStatus:
    with session_scope(write=False) as session:
        row = session.get(Deadline, deadline_id)
        assert row is not None
        return row.status


def test_expiry_end_to_end(env: dict[str, str], tmp_path: Path) -> None:
    """A sandbox expiry fires on time through scheduler → worker → event → sunset, ending retired and archived."""
    with session_scope() as session:
        missed = deadlines.schedule(session, kind="probe", due_at=utcnow() - timedelta(minutes=5))
    expires = utcnow() + timedelta(seconds=4)
    from tests.helpers.timers import make_app

    app = make_app(expires_at=expires)
    add_credential(app.id, provider="builtin-service")
    with session_scope() as session:
        deadlines.reschedule_app(session, app, get_policy())
    worker = start_worker(env=env, log_path=tmp_path / "worker.log", queues="ingest,sunset,notifications")
    scheduler = _scheduler(env, tmp_path / "scheduler.log")
    try:
        missed_id = missed.id
        assert missed_id is not None
        wait_until(lambda: _status(missed_id) is DeadlineStatus.fired, timeout=30, what="catch-up of a missed deadline")
        wait_until(lambda: _stage(app.id) is Stage.retired, timeout=60, what="expiry → retired")
    finally:
        scheduler.stop()
        worker.stop()
    with session_scope(write=False) as session:
        expiry = session.exec(select(Deadline).where(Deadline.app_id == app.id, Deadline.kind == "expiry")).one()
        archived = session.exec(select(ArchiveRecord).where(ArchiveRecord.app_id == app.id)).one()
    # Precise lateness is measured by bench/timers.py; here only "on time, not early" on a busy machine.
    assert expiry.fired_at is not None and 0 <= (expiry.fired_at - expiry.due_at).total_seconds() < 10
    assert Path(archived.uri.removeprefix("file://")).is_file()
    actions = audit_actions(app.id)
    assert "lifecycle.mark_expiring" in actions and "lifecycle.expire" in actions and "sunset.retire" in actions
    assert '"scheduler stopped"' in scheduler.log()


def _stage(app_id: str) -> Stage:
    with session_scope(write=False) as session:
        app = session.get(MicroApp, app_id)
        assert app is not None
        return app.stage


def _queued_ids(redis_client: Any) -> set[int]:
    ids: set[int] = set()
    for raw in redis_client.lrange("ingest", 0, -1):
        message = json.loads(raw)
        body = json.loads(base64.b64decode(message["body"]))
        ids.update(body[0][0])
    return ids


def test_standby_takes_over_within_the_ttl(env: dict[str, str], tmp_path: Path, redis_client: Any) -> None:
    """Two schedulers: one leads; SIGKILL it and the other leads within the lock TTL and fires new deadlines."""
    first = _scheduler(env, tmp_path / "a.log")
    second = _scheduler(env, tmp_path / "b.log")
    try:
        wait_until(lambda: _leading(first) or _leading(second), timeout=30, what="a leader")
        time.sleep(2)  # several renewals: the standby must stay a standby meanwhile
        leader, standby = (first, second) if _leading(first) else (second, first)
        assert not _leading(standby)
        leader.kill()
        killed = time.monotonic()
        wait_until(lambda: _leading(standby), timeout=10, interval=0.05, what="takeover")
        takeover = time.monotonic() - killed
        assert takeover <= float(env["SCHEDULER_LOCK_TTL_SECONDS"]) + 1.0, takeover
        with session_scope() as session:
            row = deadlines.schedule(session, kind="probe", due_at=utcnow() + timedelta(seconds=1))
        wait_until(lambda: row.id in _queued_ids(redis_client), timeout=10, what="the new leader enqueues")
    finally:
        first.stop()
        second.stop()


def test_killed_worker_sunset_resumes_without_repeating(env: dict[str, str], tmp_path: Path) -> None:
    """SIGKILL the worker between sunset steps: a new worker resumes at the next step; no step runs twice."""
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.sunset import flows as sunset
    from tests.helpers.timers import make_app

    slow = {**env, "SUNSET_STEP_PAUSE_SECONDS": "3", "SUNSET_RESUME_SECONDS": "4"}
    app = make_app(stage=Stage.production, expires_at=None)
    cred = add_credential(app.id, provider="builtin-service")
    first = start_worker(env=slow, log_path=tmp_path / "w1.log", queues="sunset", concurrency=1)
    with session_scope() as session:
        row = catalog.get_app(session, app.id)
        catalog.apply_action(session, row, Action.retire, actor="admin@example.com", reason="t", policy=get_policy())
        sunset.start_sunset(session, row, trigger="manual", actor="admin@example.com", reason="crash drill")
    wait_until(lambda: _run(app.id).step is SunsetStep.revoke, timeout=30, what="freeze done")
    first.kill()  # during the pause after freeze: the message is never acked
    assert _run(app.id).step is SunsetStep.revoke
    second = start_worker(env=slow, log_path=tmp_path / "w2.log", queues="sunset", concurrency=1)
    scheduler = _scheduler(slow, tmp_path / "scheduler.log")  # its resume sweep re-enqueues the stalled run
    try:
        wait_until(lambda: _run(app.id).status is SunsetStatus.done, timeout=60, what="resumed sunset done")
    finally:
        scheduler.stop()
        second.stop()
    run = _run(app.id)
    assert run.attempts >= 2 and _stage(app.id) is Stage.retired
    actions = audit_actions(app.id)
    for step in ("sunset.started", "sunset.freeze", "sunset.revoke", "sunset.archive", "sunset.retire"):
        assert actions.count(step) == 1, (step, actions)
    assert actions.count("archive.created") == 1 and actions.count("credential.revoked") == 1
    assert cred in run.steps["revoke"]["credential_ids"]


def _run(app_id: str) -> SunsetRun:
    with session_scope(write=False) as session:
        return session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).one()
