"""Handlers for the lifecycle events fired deadlines emit, and for retirement requests.

Each handler runs inside the transaction that marks its event handled (see
`orchestrator.events.registry`), so it only writes to the database; slow work (the sunset job, the
retention purge) is enqueued after that transaction commits. A handler first checks that the event
still applies — an extension, a transfer or a usage ping may have happened since the timer fired.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import Session

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, POLICY_ACTOR, Action, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import get_policy, whole
from orchestrator.clock import as_utc, utcnow
from orchestrator.events.models import Event
from orchestrator.events.types import EventType
from orchestrator.logs import get_logger
from orchestrator.sunset import flows as sunset
from orchestrator.tasks import TaskName, send_after_commit
from orchestrator.timers import service as deadlines

log = get_logger(__name__)
# An expiry that moved by less than this is the same expiry (rounding of stored timestamps).
_SAME = timedelta(seconds=1)


def _app(session: Session, event: Event) -> MicroApp | None:
    app = session.get(MicroApp, event.app_id) if event.app_id else None
    if app is None:
        event.last_error = f"app {event.app_id!r} no longer exists; nothing to do"
    return app


def _due(event: Event) -> datetime | None:
    raw = event.payload.get("due_at")
    return as_utc(datetime.fromisoformat(raw)) if raw else None


def _expiry_moved(app: MicroApp, event: Event) -> bool:
    """True when the app's expiry is no longer the one this timer was set for (extended since)."""
    if app.expires_at is None:
        return True
    basis = event.payload.get("expires_at")
    if basis:
        return abs(as_utc(app.expires_at) - as_utc(datetime.fromisoformat(basis))) > _SAME
    due = _due(event)
    return due is not None and as_utc(app.expires_at) > due + _SAME


def on_expiring(session: Session, event: Event) -> None:
    """An expiry notice is due: the app enters `expiring` and the owner gets the notice with "Extend"."""
    app = _app(session, event)
    if app is None or app.stage not in ACTIVE_STAGES | {Stage.expiring} or _expiry_moved(app, event):
        return
    policy = get_policy()
    days = whole(float(event.payload.get("days_before") or event.payload.get("days_left") or 0))
    if app.stage in ACTIVE_STAGES:
        catalog.apply_action(
            session, app, Action.mark_expiring, actor=POLICY_ACTOR, policy=policy,
            reason=f"expires in {days} day(s)", data={"expires_at": app.expires_at},
        )  # fmt: skip
    from orchestrator.approvals.flows import send_expiry_notice

    left = max(0, round((as_utc(app.expires_at) - utcnow()).total_seconds() / 86400)) if app.expires_at else int(days)
    send_expiry_notice(session, app, days_left=left, key=f"expiry-notice:{event.id}")
    audit.record(
        session, actor=POLICY_ACTOR, action=AuditAction.app_expiry_notice_sent, app_id=app.id,
        data={"days_before": days, "expires_at": app.expires_at, "deadline_id": event.payload.get("deadline_id")},
    )  # fmt: skip


def on_expired(session: Session, event: Event) -> None:
    """The expiry is reached: the app goes to `sunsetting` and its sunset job starts."""
    app = _app(session, event)
    if app is None or app.stage not in ACTIVE_STAGES | {Stage.expiring} or _expiry_moved(app, event):
        return
    policy = get_policy()
    reason = f"expired on {as_utc(app.expires_at).date().isoformat()}" if app.expires_at else "expired"
    if app.stage in ACTIVE_STAGES:
        catalog.apply_action(session, app, Action.mark_expiring, actor=POLICY_ACTOR, reason=reason, policy=policy)
    catalog.apply_action(session, app, Action.expire, actor=POLICY_ACTOR, reason=reason, policy=policy)
    sunset.start_sunset(session, app, trigger=EventType.app_expired, actor=POLICY_ACTOR, reason=reason)


def on_retire_requested(session: Session, event: Event) -> None:
    """Someone asked to retire the app (it is already `sunsetting`): start its sunset job."""
    app = _app(session, event)
    if app is None or app.stage is not Stage.sunsetting:
        return
    actor = str(event.payload.get("actor") or event.source)
    reason = str(event.payload.get("reason") or "retirement requested")
    sunset.start_sunset(session, app, trigger=EventType.app_retire_requested, actor=actor, reason=reason)


def on_owner_grace_over(session: Session, event: Event) -> None:
    """Nobody took over an orphaned app in time: suspend it and start its sunset job."""
    app = _app(session, event)
    if app is None or app.stage is not Stage.orphaned:
        return  # reassigned (or already on its way out) since the timer was set
    policy = get_policy()
    reason = "owner left and the grace period is over"
    catalog.apply_action(session, app, Action.suspend, actor=POLICY_ACTOR, reason=reason, policy=policy)
    catalog.apply_action(session, app, Action.expire, actor=POLICY_ACTOR, reason=reason, policy=policy)
    sunset.start_sunset(session, app, trigger=EventType.owner_grace_over, actor=POLICY_ACTOR, reason=reason)


def on_inactive(session: Session, event: Event) -> None:
    """No use for the policy's inactivity period: the app gets an expiry, notices first, like a sandbox."""
    app = _app(session, event)
    if app is None or app.stage not in ACTIVE_STAGES:
        return
    policy = get_policy()
    rules = policy.for_class(app.data_class)
    now = utcnow()
    last = as_utc(app.last_used_at or app.approved_at or app.created_at)
    if last + timedelta(days=rules.inactivity_days) > now:
        deadlines.reschedule_app(session, app, policy, now=now)  # used since: the timer moves on
        return
    expires = now + timedelta(days=max(rules.expiry_notice_days))
    if app.expires_at is None or as_utc(app.expires_at) > expires:
        app.expires_at = expires
        app.version += 1
        app.updated_at = now
        session.add(app)
    audit.record(
        session, actor=POLICY_ACTOR, action=AuditAction.app_inactive, app_id=app.id,
        reason=f"no use since {last.date().isoformat()} ({whole(rules.inactivity_days)} days)",
        data={"last_used_at": last, "expires_at": app.expires_at},
    )  # fmt: skip
    deadlines.reschedule_app(session, app, policy, now=now)


def on_retention_due(session: Session, event: Event) -> None:
    """The retention period of an archive is over: purge it (unless on legal hold) off this transaction."""
    if _app(session, event) is None:
        return
    # A lost message is re-sent by the sunset resume sweep (`retention.overdue_purges`).
    send_after_commit(session, TaskName.purge_archives, event.app_id)
