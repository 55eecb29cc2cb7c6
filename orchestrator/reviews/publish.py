"""Getting review tasks to the workers: publish after commit, and re-publish what was lost.

A review row is its own outbox record. Whoever queues a review (the event handler, or a failed
attempt that will be retried) calls `publish_after_commit`: the task `workers.run_review(id)` is sent
on the `reviews` queue only once the transaction has committed, so a worker never looks for a row
that is not there yet. If the process dies between commit and publish, or the broker loses the
message, `redrive_stale` finds the row — still `queued` (or `failed` with a retry due) long after it
was published, or `running` past its lease because its worker died — and publishes it again. It runs
as a job of the scheduler (`schedules.jobs`, every REVIEW_SWEEP_INTERVAL_SECONDS) and as the task
`workers.sweep_reviews`.
A duplicate message is harmless: the task claims the row with a compare-and-set.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, update
from sqlmodel import Session, col, select

from orchestrator.clock import utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.db import after_commit_batch
from orchestrator.logs import get_logger
from orchestrator.reviews.models import Review, ReviewStatus
from orchestrator.tasks import Queue, TaskName, send

log = get_logger(__name__)

QUEUE = Queue.reviews


def publish(review_ids: list[int], *, countdown: float | None = None) -> int:
    """Send `workers.run_review` for each id; how many were sent (a failure is logged, the sweep retries).

    `countdown` stays short (seconds): a long one would outlive the broker's visibility timeout.
    """
    sent = 0
    try:
        for review_id in review_ids:
            send(TaskName.run_review, review_id, countdown=countdown)
            sent += 1
    except Exception as exc:  # broker down: the rows stay queued and `redrive_stale` publishes them later
        log.warning("publishing reviews failed; the sweep will retry", error=str(exc)[:300], reviews=len(review_ids))
    return sent


def _publish_committed(review_ids: list[int]) -> None:
    publish(list(dict.fromkeys(review_ids)))


def publish_after_commit(session: Session, review_id: int) -> None:
    """Publish the review task once the caller's transaction has committed (each id once)."""
    after_commit_batch(session, _publish_committed, review_id)


def claim_stale(session: Session, settings: Settings, *, limit: int = 200) -> list[int]:
    """Ids of reviews whose message looks lost, leased to the caller by moving `published_at` to now."""
    now = utcnow()
    quiet = func.coalesce(Review.published_at, Review.created_at) < now - timedelta(
        seconds=settings.review_redrive_after_seconds
    )
    due = or_(
        and_(col(Review.status) == ReviewStatus.queued, quiet),
        and_(col(Review.status) == ReviewStatus.failed, col(Review.retry_at).is_not(None), quiet),
        and_(col(Review.status) == ReviewStatus.running, col(Review.lease_until) < now, quiet),
    )
    query = select(Review.id).where(due).order_by(col(Review.id)).limit(limit).with_for_update(skip_locked=True)
    ids = [int(i) for i in session.exec(query).all() if i is not None]
    if ids:
        session.execute(update(Review).where(col(Review.id).in_(ids)).values(published_at=now))
    return ids


def redrive_stale(settings: Settings | None = None) -> int:
    """Publish again every review whose message looks lost; the number published."""
    from orchestrator.db import session_scope

    settings = settings or get_settings()
    with session_scope() as session:
        ids = claim_stale(session, settings)
    if not ids:
        return 0
    log.info("re-publishing reviews", reviews=len(ids))
    return publish(ids)
