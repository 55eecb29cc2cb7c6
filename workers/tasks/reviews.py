"""Celery tasks for the reviews queue (thin: parse ids, call the review flow, return the outcome).

Importing this module registers the review event handlers (`orchestrator.reviews.handlers`), and a
worker that is ready starts the sweep that re-publishes reviews whose message was lost.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready, worker_shutdown

from orchestrator.logs import get_logger
from orchestrator.reviews import flows, handlers, publish  # noqa: F401  (handlers: registers the event handlers)
from workers.app import app

log = get_logger(__name__)


@app.task(name="workers.run_review", queue="reviews")
def run_review(review_id: Any) -> str:
    """Run one automated review by id; a review already done (or running elsewhere) is skipped."""
    try:
        parsed = int(review_id)
    except (TypeError, ValueError):
        log.error("unparseable review message dropped", review_id=repr(review_id)[:100])
        return "dropped"
    return flows.run_review(parsed)


@app.task(name="workers.sweep_reviews", queue="reviews")
def sweep_reviews() -> int:
    """Publish again the reviews whose message looks lost; returns how many."""
    return publish.redrive_stale()


@worker_ready.connect
def _start_sweep(**_: Any) -> None:
    if publish.start_background_sweep():
        log.info("review sweep running in this worker")


@worker_shutdown.connect
def _stop_sweep(**_: Any) -> None:
    publish.stop_background_sweep()
