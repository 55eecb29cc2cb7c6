"""Who hears about a sunset: the owner and the approver channel at each step, IT on a zombie.

Messages go through `orchestrator.notifications.service` (Slack, or the log without a Slack token), keyed
so that a resumed or repeated step never sends the same message twice.
"""

from __future__ import annotations

from sqlmodel import Session

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.logs import get_logger

log = get_logger(__name__)


def _send(session: Session, *, to: str, text: str, key: str, app_id: str) -> None:
    try:
        from orchestrator.notifications.service import notify
    except ImportError:  # notifications not installed: the log and the audit trail carry the message
        log.info("notification", to=to, text=text, key=key, app_id=app_id)
        audit.record(
            session,
            actor="sunset",
            action=AuditAction.notification_logged,
            app_id=app_id,
            data={"to": to, "text": text},
        )
        return
    notify(session, to=to, text=text, key=key, app_id=app_id)


def tell(session: Session, app: MicroApp, policy: Policy, step: str, text: str) -> None:
    """Tell the owner and the approver channel that a sunset step finished."""
    channel = policy.for_class(app.data_class).approver_group.slack_channel
    for to in (app.owner_email, channel):
        _send(session, to=to, text=text, key=f"sunset:{app.id}:{step}:{to}", app_id=app.id)


def alert_it(session: Session, app: MicroApp, policy: Policy, text: str, *, key: str) -> None:
    """Alert IT (the escalation channel, else the approver channel) that a human must act."""
    group = policy.for_class(app.data_class).approver_group
    to = group.escalation_channel or group.slack_channel
    log.error("IT alert", app_id=app.id, to=to, text=text)
    audit.record(
        session, actor="sunset", action=AuditAction.sunset_it_alerted, app_id=app.id, reason=text, data={"to": to}
    )
    _send(session, to=to, text=f":rotating_light: {text}", key=f"sunset:{app.id}:{key}", app_id=app.id)
