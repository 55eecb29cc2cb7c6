"""Celery tasks for the notifications queue (thin: parse ids, call a service, record the outcome)."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import TransientIntegrationError
from orchestrator.tasks import TaskName, backoff_seconds
from workers.app import app

# Bounded: a Slack outage longer than this leaves the row for `sweep_notifications`.
MAX_RETRIES = 8


def _retry_later(task: Any, exc: TransientIntegrationError) -> Exception:
    """Retry after 2·2^n seconds (at most 300), fully jittered, or when a short lease held by another
    (maybe dead) worker lapses; past MAX_RETRIES `exc` is raised."""
    from orchestrator.notifications.service import Leased

    if isinstance(exc, Leased):
        return task.retry(countdown=exc.retry_in, exc=exc)  # type: ignore[no-any-return]
    return task.retry(countdown=backoff_seconds(task.request.retries + 1, 2, 300, jitter=1.0), exc=exc)  # type: ignore[no-any-return]


@app.task(
    bind=True,
    name=TaskName.deliver_notification,
    max_retries=MAX_RETRIES,
)
def deliver_notification(self: Any, notification_id: int) -> str:
    """Post (or update) one notification at most once; returns its outcome."""
    from orchestrator.notifications import delivery  # Slack's client: imported by the first task, not at start

    try:
        return delivery.deliver(int(notification_id))
    except TransientIntegrationError as exc:
        raise _retry_later(self, exc) from None


@app.task(
    bind=True,
    name=TaskName.handle_slack_interaction,
    max_retries=MAX_RETRIES,
)
def handle_slack_interaction(self: Any, interaction_id: int) -> str:
    """Act on one recorded Slack click or modal submission; returns its outcome."""
    from orchestrator.approvals import interactions

    try:
        return interactions.handle(int(interaction_id))
    except TransientIntegrationError as exc:
        raise _retry_later(self, exc) from None


@app.task(name=TaskName.sweep_notifications)
def sweep_notifications() -> dict[str, int]:
    """Re-enqueue notifications and interactions whose Celery message was lost."""
    from orchestrator.notifications import service as notifications

    return notifications.sweep()
