"""Sending work to the Celery workers: task names, queues, the shared Celery configuration, one sender.

This is infrastructure: it imports only config, db, logs, errors and clock, never a domain or
`workers`. Domains, the scheduler and the API send work by `TaskName` through `send` (right away) or
`send_after_commit` (once the caller's transaction has committed, never if it rolls back; the rules
live in `orchestrator.db.after_commit`). The worker (`workers.app`) builds its Celery app from the
same `celery_config`, and its task modules register each task as `@app.task(name=TaskName.X,
queue=QUEUE_OF[TaskName.X])`, so the sender and the worker agree on names, queues and settings.

Queues: ingest (lifecycle events), reviews (slow), notifications (Slack), sunset (revocations,
archives), so a slow review never starves an approval.
"""

from __future__ import annotations

import random
import threading
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu import Queue as KombuQueue

from orchestrator import broker_config
from orchestrator.config import get_settings

if TYPE_CHECKING:
    from sqlmodel import Session

# `orchestrator.embedded_broker` and `orchestrator.db` load SQLAlchemy (about 17 MB a process): they are
# imported where used, so an idle worker on Redis or RabbitMQ never holds it (issue #19). This is
# embedded_broker.SCHEME + "+" (tests/workers/test_idle_imports.py checks they agree).
EMBEDDED_BROKER_PREFIX = "sqla+"


class TaskName(StrEnum):
    """Every Celery task, by its wire name (the values are what travels in messages: never rename one)."""

    handle_event = "workers.handle_event"
    handle_events = "workers.handle_events"
    fire_deadlines = "workers.fire_deadlines"
    run_review = "workers.run_review"
    sweep_reviews = "workers.sweep_reviews"
    deliver_notification = "workers.deliver_notification"
    handle_slack_interaction = "workers.handle_slack_interaction"
    sweep_notifications = "workers.sweep_notifications"
    run_sunset = "workers.run_sunset"
    resume_stalled_sunsets = "workers.resume_stalled_sunsets"
    purge_archives = "workers.purge_archives"


class Queue(StrEnum):
    """The broker queues a worker may consume (`orchestrator worker -Q …`)."""

    ingest = "ingest"
    reviews = "reviews"
    notifications = "notifications"
    sunset = "sunset"


QUEUE_OF: dict[TaskName, Queue] = {
    TaskName.handle_event: Queue.ingest,
    TaskName.handle_events: Queue.ingest,
    TaskName.fire_deadlines: Queue.ingest,
    TaskName.run_review: Queue.reviews,
    TaskName.sweep_reviews: Queue.reviews,
    TaskName.deliver_notification: Queue.notifications,
    TaskName.handle_slack_interaction: Queue.notifications,
    TaskName.sweep_notifications: Queue.notifications,
    TaskName.run_sunset: Queue.sunset,
    TaskName.resume_stalled_sunsets: Queue.sunset,
    TaskName.purge_archives: Queue.sunset,
}
QUEUES = tuple(q.value for q in Queue)
VISIBILITY_TIMEOUT = 3600  # above the longest task (time limit 900 s) plus the longest retry delay
# Bounded: one quick retry, then it is the sweeps' turn (kombu's default retries for seconds).
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


def celery_config(broker_url: str) -> dict[str, Any]:
    """Settings for at-least-once delivery: late acks, reject on worker loss, prefetch 1."""
    # The SQLAlchemy transport (embedded default) passes every transport option to create_engine(),
    # so the Redis-only options, visibility_timeout included, must not reach it.
    transport: dict[str, Any] = {}
    if broker_url.startswith(EMBEDDED_BROKER_PREFIX):
        from orchestrator import embedded_broker

        settings = get_settings()
        embedded_broker.install(settings.embedded_broker_poll_seconds, wakeup=settings.embedded_broker_wakeup)
    if broker_url.startswith(("redis://", "rediss://")):
        transport.update(
            visibility_timeout=VISIBILITY_TIMEOUT,
            socket_timeout=10,
            socket_connect_timeout=5,
            socket_keepalive=True,
            retry_on_timeout=True,
        )
    config: dict[str, Any] = {
        "broker_url": broker_url,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": transport,
        "visibility_timeout": VISIBILITY_TIMEOUT,
        "task_time_limit": 900,
        "task_soft_time_limit": 840,
        "task_default_queue": Queue.ingest.value,
        "task_queues": [KombuQueue(name) for name in QUEUES],
        # The same table routes tasks sent from inside a worker (Celery 6 drops the task's `queue` option).
        "task_routes": {task.value: {"queue": queue.value} for task, queue in QUEUE_OF.items()},
        "worker_hijack_root_logger": False,
        "enable_utc": True,
        "timezone": "UTC",
    }
    if broker_config.is_amqp(broker_url):  # RabbitMQ: quorum queues, confirms, a delivery limit
        config.update(broker_config.amqp_config(QUEUES, Queue.ingest.value, get_settings().broker_delivery_limit))
    return config


_senders: dict[str, Celery] = {}
_senders_lock = threading.Lock()


def sender(broker_url: str | None = None) -> Celery:
    """A send-only Celery app (no task modules) on `broker_url` (default: BROKER_URL), built once per URL."""
    url = broker_url or get_settings().broker_url
    app = _senders.get(url)
    if app is None:
        with _senders_lock:
            app = _senders.get(url)
            if app is None:
                # Not the current app: in a worker process that stays the worker's own.
                app = Celery("orchestrator-sender", set_as_current=False)
                app.conf.update(celery_config(url))
                _senders[url] = app
    return app


def send(
    task: TaskName,
    *args: Any,
    task_id: str | None = None,
    countdown: float | None = None,
    eta: datetime | None = None,
    **kwargs: Any,
) -> None:
    """Send `task(*args, **kwargs)` to its queue now; raises when the broker cannot take it."""
    sender().send_task(
        task.value,
        args=list(args),
        kwargs=kwargs or None,
        task_id=task_id,
        queue=QUEUE_OF[task].value,
        countdown=countdown,
        eta=eta,
        retry=True,
        retry_policy=PUBLISH_RETRY_POLICY,
    )


def send_after_commit(
    session: Session,
    task: TaskName,
    *args: Any,
    task_id: str | None = None,
    countdown: float | None = None,
    eta: datetime | None = None,
    **kwargs: Any,
) -> None:
    """`send` once the caller's transaction has committed (dropped on rollback; a failure is logged).

    Every task sent this way has a sweep that sends it again when the message is lost.
    """
    from orchestrator.db import after_commit

    after_commit(session, lambda: send(task, *args, task_id=task_id, countdown=countdown, eta=eta, **kwargs))


def backoff_seconds(attempt: int, base: float, cap: float, *, jitter: float = 0.2) -> float:
    """The delay before the retry after `attempt` (1-based): base·2^(attempt−1), capped at `cap`.

    Up to `jitter` (a fraction) is taken off at random, so work that failed together does not retry
    together; the delay never exceeds `cap` (which callers keep under the broker's visibility timeout).
    """
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return round(float(delay) * random.uniform(1 - jitter, 1), 3)
