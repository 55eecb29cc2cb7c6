"""The event tasks on the ingest queue, `workers.handle_event(event_id)` and
`workers.handle_events([event_id, …])` (what the publisher sends for events committed together).

The tasks are thin: they hand each id to `orchestrator.events.runner.run_event` (consecutive events of a
type with batch forms, such as pushes, to `run_group`, which handles them in one transaction), which claims
the event, runs its handlers once and records the outcome; a transient failure comes back with a
backoff delay and is retried through Celery (countdown capped by EVENT_RETRY_MAX_SECONDS, well
under the broker's visibility timeout). While a task runs, its events carry an in-flight lease in
Redis (`orchestrator.events.leases`), so that the relay re-publishes an event soon after its worker
died, and never one that is still running. The relay that re-publishes lost events is a scheduler job
(`schedules.jobs`), not part of the worker.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from celery import Task

from orchestrator.config import get_settings
from orchestrator.logs import get_logger
from orchestrator.tasks import TaskName
from workers.app import app

if TYPE_CHECKING:
    from orchestrator.config import Settings

# The runner (and through it every handler) is imported by the first task, not by an idle worker.

log = get_logger(__name__)
_EVENT_ID = re.compile(r"^[0-9a-f]{32}$")


@app.task(name=TaskName.handle_event, bind=True, max_retries=None)
def handle_event(self: Task[Any, Any], event_id: Any, suspect: bool = False) -> str:
    """Handle one event by id; returns the outcome (handled, skipped, parked, failed, missing).

    A message the broker redelivers (the worker died holding it) or the relay re-publishes is
    `suspect`: the runner then commits the attempt before running handlers.
    """
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        # Nothing in the database to park: drop it loudly rather than retry it forever.
        log.error("unparseable event message dropped", event_id=repr(event_id)[:100])
        return "dropped"
    from orchestrator.events import leases
    from orchestrator.events.runner import event_backoff_seconds, run_event

    settings = get_settings()
    try:
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        with leases.held([event_id], settings):
            outcome = run_event(event_id, suspect=bool(suspect) or redelivered, settings=settings)
    except Exception as exc:  # the database itself failed; try again later, a bounded number of times
        if self.request.retries >= settings.event_max_attempts:
            log.error("giving up on the message; the relay will publish the event again", error=str(exc)[:300])
            raise
        countdown = event_backoff_seconds(self.request.retries + 1, settings)
        leases.hold_for(event_id, countdown, settings)  # the retry message is alive, only waiting
        raise self.retry(exc=exc, countdown=countdown) from exc
    if outcome.retry_in is not None:
        leases.hold_for(event_id, outcome.retry_in, settings)
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


# A batch hands what is left to a new message after this long, so that one message never holds a
# worker near the time limit (an event whose handler fetches from GitHub may take seconds).
BATCH_BUDGET_SECONDS = 60.0


@app.task(name=TaskName.handle_events, bind=True, max_retries=None)
def handle_events(self: Task[Any, Any], event_ids: Any, suspect: bool = False) -> dict[str, int]:
    """Handle a batch of events, each alone or in a group of its type (`run_group`); counts of the outcomes.

    An event to retry later, and the rest of the batch when the database fails, go on as
    `handle_event` messages with their own bounded retries. A batch the broker redelivers (its
    worker died) or that is marked suspect is split into single suspect messages, so that an event
    that kills its worker is counted, and eventually parked, alone.
    """
    if not isinstance(event_ids, list) or not all(isinstance(i, str) and _EVENT_ID.match(i) for i in event_ids):
        log.error("unparseable event batch dropped", event_ids=repr(event_ids)[:100])
        return {"dropped": 1}
    if suspect or (self.request.delivery_info or {}).get("redelivered"):
        for event_id in event_ids:
            handle_event.apply_async(args=(event_id,), kwargs={"suspect": True}, task_id=event_id)
        return {"split": len(event_ids)}
    from orchestrator.events import leases

    settings = get_settings()
    # The whole batch is leased up front: its tail waits in this task, not in the broker.
    retries: dict[str, float] = {}
    with leases.held(event_ids, settings):
        counts = _handle_batch(event_ids, settings, retries)
    for event_id, retry_in in retries.items():  # after the batch's leases are released, not before
        leases.hold_for(event_id, retry_in, settings)
    return counts


def _handle_batch(event_ids: list[str], settings: Settings, retries: dict[str, float]) -> dict[str, int]:
    """Run the events of a batch in order; `retries` gets the ids sent on to a later retry.

    Consecutive events of a type with batch forms share a transaction (`run_group`); the others run alone.
    """
    from orchestrator.events.runner import event_backoff_seconds, event_types, run_group

    counts: Counter[str] = Counter()
    started = time.monotonic()
    index = 0
    types: dict[str, str] | None = None  # read once, at the first group decision
    while index < len(event_ids):
        event_id = event_ids[index]
        if index and time.monotonic() - started > BATCH_BUDGET_SECONDS:
            handle_events.apply_async(args=(event_ids[index:],), task_id=f"batch-{event_id}")
            counts["passed_on"] += len(event_ids) - index
            break
        try:
            if types is None and len(event_ids) > 1:
                types = event_types(event_ids)
            outcomes = run_group(event_ids[index:], settings=settings, types=types)
        except Exception as exc:  # the database itself failed: each event left retries on its own
            log.warning("database failed in a batch; its events go on singly", error=str(exc)[:300])
            for rest in event_ids[index:]:
                handle_event.apply_async(args=(rest,), task_id=rest, countdown=event_backoff_seconds(1, settings))
            counts["passed_on"] += len(event_ids) - index
            break
        for done_id, outcome in outcomes:
            if outcome.retry_in is not None:
                retries[done_id] = outcome.retry_in
                handle_event.apply_async(args=(done_id,), task_id=done_id, countdown=outcome.retry_in)
            counts[outcome.status] += 1
        index += len(outcomes)
    return dict(counts)
