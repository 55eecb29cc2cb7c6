"""Getting review tasks to the workers: publish after commit, and re-publish what was lost.

A review row is its own outbox record. Whoever queues a review (the event handler, or a failed
attempt that will be retried) calls `publish_after_commit`: the task `workers.run_review(id)` is sent
on the `reviews` queue only once the transaction has committed, so a worker never looks for a row
that is not there yet. If the process dies between commit and publish, or the broker loses the
message, `redrive_stale` finds the row — still `queued` (or `failed` with a retry due) long after it
was published, or `running` past its lease because its worker died — and publishes it again. It runs
in a child process of every worker (REVIEW_SWEEP_INTERVAL_SECONDS) and as the task `workers.sweep_reviews`.
A duplicate message is harmless: the task claims the row with a compare-and-set.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from multiprocessing.process import BaseProcess
from typing import Any

from sqlalchemy import and_, event, func, or_, update
from sqlmodel import Session, col, select

from orchestrator.clock import utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.logs import get_logger
from orchestrator.reviews.models import Review, ReviewStatus

log = get_logger(__name__)

TASK = "workers.run_review"
QUEUE = "reviews"
_PENDING_KEY = "reviews_publish"
_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}
_celery_apps: dict[str, Any] = {}


def _celery() -> Any:
    """The workers' Celery app, or one on BROKER_URL when the settings changed since it was built."""
    from workers.app import app, make_celery

    broker = get_settings().broker_url
    if app.conf.broker_url == broker:
        return app
    if broker not in _celery_apps:
        _celery_apps[broker] = make_celery(broker)
    return _celery_apps[broker]


def publish(review_ids: list[int], *, countdown: float | None = None) -> int:
    """Send `workers.run_review` for each id; how many were sent (a failure is logged, the sweep retries).

    `countdown` stays short (seconds): a long one would outlive the broker's visibility timeout.
    """
    sent = 0
    try:
        celery = _celery()
        for review_id in review_ids:
            celery.send_task(
                TASK, args=[review_id], queue=QUEUE, countdown=countdown, retry=True, retry_policy=_RETRY_POLICY
            )
            sent += 1
    except Exception as exc:  # broker down: the rows stay queued and `redrive_stale` publishes them later
        log.warning("publishing reviews failed; the sweep will retry", error=str(exc)[:300], reviews=len(review_ids))
    return sent


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a SAVEPOINT was released, not the transaction
    pending = session.info.pop(_PENDING_KEY, None)
    if pending:
        publish(list(dict.fromkeys(pending)))


def _after_soft_rollback(session: Session, previous: Any) -> None:
    if previous.parent is None:  # the whole transaction was rolled back: nothing to publish
        session.info.pop(_PENDING_KEY, None)


def publish_after_commit(session: Session, review_id: int) -> None:
    """Publish the review task once the caller's transaction has committed."""
    if not session.info.get("reviews_listening"):
        session.info["reviews_listening"] = True
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_soft_rollback", _after_soft_rollback)
    session.info.setdefault(_PENDING_KEY, []).append(review_id)


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


# A spawned child process, not a thread: prefork forks the worker's main process to replace a pool
# process, and a fork taken while a sweep thread holds a lock would deadlock the new child.
_background: BaseProcess | None = None


def _sweep_loop(stop: threading.Event) -> None:
    settings = get_settings()
    log.info("review sweep started", interval=settings.review_sweep_interval_seconds)
    while not stop.wait(settings.review_sweep_interval_seconds):
        try:
            redrive_stale(settings)
        except Exception as exc:  # e.g. the database is briefly unreachable; the next pass retries
            log.warning("review sweep failed", error=str(exc)[:300])
    log.info("review sweep stopped")


def start_background_sweep(settings: Settings | None = None) -> bool:
    """Start the re-publishing sweep as a spawned child process of this one (once); False when disabled."""
    from orchestrator.events.relay import spawn_child

    global _background
    settings = settings or get_settings()
    if settings.review_sweep_interval_seconds <= 0 or (_background is not None and _background.is_alive()):
        return False
    _background = spawn_child(_sweep_loop, "review-sweep")
    return True


def stop_background_sweep(timeout: float = 5.0) -> None:
    """Stop the sweep process, if any, and wait for it (SIGKILL after `timeout`)."""
    from orchestrator.events.relay import stop_child

    global _background
    process, _background = _background, None
    stop_child(process, timeout)
