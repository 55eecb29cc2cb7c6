"""The Celery application, configured for at-least-once delivery (acks late, lost workers requeued).

Queues: ingest (lifecycle events), reviews (slow), notifications (Slack), sunset (revocations,
archives), so a slow review never starves an approval.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

from orchestrator.config import get_settings

QUEUES = ("ingest", "reviews", "notifications", "sunset")
# Task modules; each registers its tasks with @app.task(name="workers.<name>").
TASK_MODULES = [
    "workers.tasks.events",
    "workers.tasks.reviews",
    "workers.tasks.notifications",
    "workers.tasks.sunset",
    "workers.tasks.timers",
]
VISIBILITY_TIMEOUT = 3600  # above the longest task (time limit 900 s) plus the longest retry delay


def celery_config(broker_url: str) -> dict[str, Any]:
    """Settings for at-least-once delivery: late acks, reject on worker loss, prefetch 1."""
    # The SQLAlchemy transport (embedded default) passes every transport option to create_engine(),
    # so the Redis-only options, visibility_timeout included, must not reach it.
    transport: dict[str, Any] = {}
    if broker_url.startswith(("redis://", "rediss://")):
        transport.update(
            visibility_timeout=VISIBILITY_TIMEOUT,
            socket_timeout=10,
            socket_connect_timeout=5,
            socket_keepalive=True,
            retry_on_timeout=True,
        )
    return {
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
        "task_default_queue": "ingest",
        "task_queues": [Queue(name) for name in QUEUES],
        "worker_hijack_root_logger": False,
        "enable_utc": True,
        "timezone": "UTC",
    }


def make_celery(broker_url: str | None = None) -> Celery:
    """A Celery app on `broker_url` (default: BROKER_URL)."""
    celery = Celery("orchestrator", include=TASK_MODULES)
    celery.conf.update(celery_config(broker_url or get_settings().broker_url))
    return celery


app = make_celery()


@worker_process_init.connect
def _dispose_inherited_connections(**_: Any) -> None:
    # Pooled connections inherited over fork are shared with the parent; drop them.
    from orchestrator.db import dispose_engines

    dispose_engines()
