"""Celery tasks for the sunset queue (thin: parse ids, call the sunset/retention service, record the outcome)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.config import get_settings
from orchestrator.errors import TransientIntegrationError
from orchestrator.logs import get_logger
from orchestrator.tasks import TaskName, backoff_seconds
from workers.app import app

log = get_logger(__name__)


@app.task(bind=True, name=TaskName.run_sunset, max_retries=100)
def run_sunset(self: Any, app_id: str) -> str:
    """Run (or resume) the app's sunset from its first unfinished step; returns the run's status."""
    from orchestrator.sunset import flows as sunset  # the credential providers: imported by the first task

    try:
        # A retry is the run's own continuation (its lease covers the wait); a first delivery may be
        # a duplicate of a message a live worker is running.
        run = sunset.advance(app_id, respect_lease=not self.request.retries)
    except sunset.RetryLater as exc:
        log.info("sunset waits to retry", app_id=app_id, reason=str(exc), countdown=round(exc.countdown, 1))
        raise self.retry(countdown=exc.countdown, exc=exc) from None
    except TransientIntegrationError as exc:
        raise self.retry(countdown=backoff_seconds(self.request.retries + 1, 15, 600), exc=exc) from None
    log.info("sunset run", app_id=app_id, status=run.status.value, step=run.step.value)
    return run.status.value


@app.task(name=TaskName.resume_stalled_sunsets)
def resume_stalled_sunsets() -> int:
    """Re-enqueue every sunset run that stopped moving, and overdue archive purges; returns the runs."""
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope
    from orchestrator.sunset import flows as sunset
    from orchestrator.sunset import retention

    settings = get_settings()
    lease = timedelta(seconds=settings.sunset_lease_seconds)
    blocked_idle = timedelta(seconds=settings.sunset_blocked_retry_seconds)
    with session_scope(write=False) as session:
        app_ids = sunset.stalled_runs(session, now=utcnow(), lease=lease, blocked_idle=blocked_idle)
        # A purge whose message was lost after its deadline fired would otherwise never run.
        purges = retention.overdue_purges(session, now=utcnow())
    sunset.enqueue(app_ids)
    for app_id in purges:
        purge_archives.apply_async(args=(app_id,))
    return len(app_ids)


@app.task(bind=True, name=TaskName.purge_archives, max_retries=20)
def purge_archives(self: Any, app_id: str) -> int:
    """Delete the app's archives past retention unless it is on legal hold; returns how many."""
    from orchestrator.sunset import retention

    try:
        result = retention.purge(app_id)
    except TransientIntegrationError as exc:
        raise self.retry(countdown=backoff_seconds(self.request.retries + 1, 30, 600), exc=exc) from None
    return len(result.purged)
