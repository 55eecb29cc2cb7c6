"""Celery tasks for the notifications queue (thin: parse ids, call a service, record the outcome)."""

from __future__ import annotations

from typing import Any

from orchestrator.approvals import interactions
from orchestrator.errors import TransientIntegrationError
from orchestrator.notifications import delivery
from orchestrator.notifications import service as notifications
from orchestrator.tasks import QUEUE_OF, TaskName
from workers.app import app

# Bounded: a Slack outage longer than this leaves the row for `sweep_notifications`.
RETRY: dict[str, Any] = {
    "autoretry_for": (TransientIntegrationError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 8,
}


@app.task(name=TaskName.deliver_notification, queue=QUEUE_OF[TaskName.deliver_notification], **RETRY)
def deliver_notification(notification_id: int) -> str:
    """Post (or update) one notification at most once; returns its outcome."""
    return delivery.deliver(int(notification_id))


@app.task(name=TaskName.handle_slack_interaction, queue=QUEUE_OF[TaskName.handle_slack_interaction], **RETRY)
def handle_slack_interaction(interaction_id: int) -> str:
    """Act on one recorded Slack click or modal submission; returns its outcome."""
    return interactions.handle(int(interaction_id))


@app.task(name=TaskName.sweep_notifications, queue=QUEUE_OF[TaskName.sweep_notifications])
def sweep_notifications() -> dict[str, int]:
    """Re-enqueue notifications and interactions whose Celery message was lost."""
    return notifications.sweep()
