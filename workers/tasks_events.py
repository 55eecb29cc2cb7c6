"""The event task: `workers.handle_event(event_id)` on the ingest queue, plus the in-worker relay.

The task is thin: it hands the id to `orchestrator.events.runner.run_event`, which claims the
event, runs its handlers once and records the outcome; a transient failure comes back with a
backoff delay and is retried through Celery (countdown capped by EVENT_RETRY_MAX_SECONDS, well
under the broker's visibility timeout). The relay process starts when the worker is ready
(RELAY_IN_WORKER) and stops with it.
"""

from __future__ import annotations

import re
from typing import Any

from celery import Task
from celery.signals import worker_ready, worker_shutdown

import orchestrator.pipeline  # noqa: F401 - registers the outbox publisher in worker processes
from orchestrator.config import get_settings
from orchestrator.events.relay import start_background_relay, stop_background_relay
from orchestrator.events.runner import backoff_seconds, run_event
from orchestrator.logs import get_logger
from workers.app import app

log = get_logger(__name__)
_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")


@app.task(name="workers.handle_event", queue="ingest", bind=True, max_retries=None)
def handle_event(self: Task, event_id: Any, suspect: bool = False) -> str:
    """Handle one event by id; returns the outcome (handled, skipped, parked, failed, missing).

    A message the broker redelivers (the worker died holding it) or the relay re-publishes is
    `suspect`: the runner then commits the attempt before running handlers.
    """
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        # Nothing in the database to park: drop it loudly rather than retry it forever.
        log.error("unparseable event message dropped", event_id=repr(event_id)[:100])
        return "dropped"
    settings = get_settings()
    try:
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        outcome = run_event(event_id, suspect=bool(suspect) or redelivered, settings=settings)
    except Exception as exc:  # the database itself failed; try again later, a bounded number of times
        if self.request.retries >= settings.event_max_attempts:
            log.error("giving up on the message; the relay will publish the event again", error=str(exc)[:300])
            raise
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries + 1, settings)) from exc
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


@worker_ready.connect
def _start_relay(**_: Any) -> None:
    if start_background_relay():
        log.info("outbox relay started beside this worker")


@worker_shutdown.connect
def _stop_relay(**_: Any) -> None:
    stop_background_relay()
