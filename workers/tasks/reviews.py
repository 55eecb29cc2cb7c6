"""Celery tasks for the reviews queue (thin: parse ids, call the review flow, return the outcome).

The sweep that re-publishes reviews whose message was lost is a scheduler job (`schedules.jobs`);
`workers.sweep_reviews` runs the same pass on demand.
"""

from __future__ import annotations

from typing import Any

from orchestrator.logs import get_logger
from orchestrator.tasks import TaskName
from workers.app import app

log = get_logger(__name__)


@app.task(name=TaskName.run_review)
def run_review(review_id: Any) -> str:
    """Run one automated review by id; a review already done (or running elsewhere) is skipped."""
    try:
        parsed = int(review_id)
    except (TypeError, ValueError):
        log.error("unparseable review message dropped", review_id=repr(review_id)[:100])
        return "dropped"
    from orchestrator.reviews import flows  # the review checks: loaded by the first review, not at start

    return flows.run_review(parsed)


@app.task(name=TaskName.sweep_reviews)
def sweep_reviews() -> int:
    """Publish again the reviews whose message looks lost; returns how many."""
    from orchestrator.reviews import publish

    return publish.redrive_stale()
