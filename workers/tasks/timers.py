"""Celery tasks for fired timers (thin: parse ids, call the deadline service, record the outcome)."""

from __future__ import annotations

from orchestrator.logs import get_logger
from orchestrator.tasks import TaskName
from workers.app import app

log = get_logger(__name__)


@app.task(name=TaskName.fire_deadlines)
def fire_deadlines(deadline_ids: list[int]) -> int:
    """Mark these deadlines fired exactly once and emit their events; returns how many this call fired."""
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope
    from orchestrator.timers import service as deadlines  # imported by the first task, not at start

    started_at = utcnow()
    with session_scope() as session:
        fired = deadlines.fire(session, [int(i) for i in deadline_ids], started_at=started_at)
    if fired:
        log.info("deadlines fired", fired=len(fired), delivered=len(deadline_ids))
    return len(fired)
