"""Deadlines: every due date of the system as a row, scheduled, replaced and fired exactly once.

The `deadline` table is the source of truth; the scheduler process (`schedules/`) only turns rows
due soon into exact wake-ups. Writers call these functions inside their own transaction; after the
commit the scheduler is nudged (Redis pub/sub when configured, else it polls). Firing is a
compare-and-set `pending → fired` that also writes the deadline's lifecycle event to the outbox,
so a second delivery of the same timer does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, or_, update
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction, SessionTransactionOrigin
from sqlmodel import Session, col, select

from orchestrator.approvals.models import ApprovalRequest, ApprovalStatus
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.db import after_commit_batch
from orchestrator.events.outbox import emit
from orchestrator.events.types import EventType
from orchestrator.logs import get_logger
from orchestrator.timers import plan as deadline_plan
from orchestrator.timers.models import Deadline, DeadlineKind, DeadlineStatus

log = get_logger(__name__)


# The event each kind emits through the outbox when it fires (None: mark fired only).
KIND_EVENTS: dict[str, EventType | None] = {
    DeadlineKind.review_due: EventType.review_due,
    DeadlineKind.expiry_notice: EventType.app_expiring,
    DeadlineKind.expiry: EventType.app_expired,
    DeadlineKind.approval_reminder: EventType.approval_reminder_due,
    DeadlineKind.approval_escalation: EventType.approval_escalation_due,
    DeadlineKind.owner_left_grace: EventType.owner_grace_over,
    DeadlineKind.owner_handover_escalation: EventType.owner_handover_escalation_due,
    DeadlineKind.inactivity: EventType.app_inactive,
    DeadlineKind.retention_purge: EventType.archive_retention_due,
    DeadlineKind.probe: None,
}


def dedup_key(deadline_id: int) -> str:
    """The outbox dedup key of the event a deadline emits: one event per deadline, ever."""
    return f"deadline:{deadline_id}"


# ----------------------------------------------------------------------------- nudging


def _nudge_committed(changes: list[tuple[str, int | Deadline]]) -> None:
    """After commit: one nudge with every deadline the transaction added or cancelled.

    An added row may be queued as the row itself (`schedule(flush=False)`): its id exists by now.
    """
    ids = [(change, item.id if isinstance(item, Deadline) else item) for change, item in changes]
    added = [deadline_id for change, deadline_id in ids if change == "added" and deadline_id is not None]
    cancelled = [deadline_id for change, deadline_id in ids if change == "cancelled" and deadline_id is not None]
    if added or cancelled:
        nudge(added=added, cancelled=cancelled)


_nudgers: dict[str, Any] = {}


def nudge(*, added: Sequence[int] = (), cancelled: Sequence[int] = ()) -> None:
    """Tell a running scheduler that deadlines changed (best effort: it also polls)."""
    from orchestrator.config import get_settings

    settings = get_settings()
    url = settings.effective_redis_url
    if not url:
        return  # the embedded scheduler polls every SCHEDULER_POLL_SECONDS
    try:
        import redis

        client = _nudgers.get(url)
        if client is None:
            # One pooled client per URL: redis-py is thread-safe and resets its pool after a fork.
            client = _nudgers[url] = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        message = json.dumps({"added": list(added)[:5000], "cancelled": list(cancelled)[:5000]})
        client.publish(settings.deadline_nudge_channel, message)
    except Exception as exc:  # the scheduler's poll picks the change up anyway
        log.warning("deadline nudge failed", error=str(exc))


# ----------------------------------------------------------------------------- writing


def schedule(
    session: Session,
    *,
    kind: DeadlineKind | str,
    due_at: datetime,
    app_id: str | None = None,
    ref: str | None = None,
    payload: dict[str, Any] | None = None,
    flush: bool = True,
) -> Deadline:
    """Insert a pending deadline in the caller's transaction; the scheduler is nudged after commit.

    `flush=False` leaves the INSERT to the session's next flush (the row has no id until then), so
    a change that schedules many (an owner leaving with hundreds of apps) writes them together.
    """
    row = Deadline(app_id=app_id, kind=str(kind), ref=ref, due_at=as_utc(due_at), payload=payload or {})
    session.add(row)
    if not flush:
        after_commit_batch(session, _nudge_committed, ("added", row))
        return row
    session.flush()
    assert row.id is not None
    after_commit_batch(session, _nudge_committed, ("added", row.id))
    return row


def cancel(
    session: Session,
    *,
    app_id: str | None,
    kinds: Iterable[DeadlineKind | str] | None = None,
    ref: str | None = None,
    ids: Iterable[int] | None = None,
) -> list[int]:
    """Cancel the pending deadlines of an app (optionally only some kinds, one ref, or some ids)."""
    known = _known_pending(session, app_id) if app_id is not None else None
    if known is not None:
        wanted_kinds = {str(k) for k in kinds} if kinds is not None else None
        wanted_ids = set(ids) if ids is not None else None
        matching = [
            row
            for row in known
            if (wanted_kinds is None or row.kind in wanted_kinds)
            and (ref is None or row.ref == ref)
            and (wanted_ids is None or row.id in wanted_ids)
        ]
        if any(row.id is None for row in matching):
            session.flush()  # a row scheduled with flush=False: it needs its id to be cancelled
        return _cancel_ids(session, [row.id for row in matching if row.id is not None])
    query = select(Deadline.id).where(Deadline.status == DeadlineStatus.pending)
    if app_id is not None:
        query = query.where(Deadline.app_id == app_id)
    if kinds is not None:
        query = query.where(col(Deadline.kind).in_([str(k) for k in kinds]))
    if ref is not None:
        query = query.where(Deadline.ref == ref)
    if ids is not None:
        query = query.where(col(Deadline.id).in_(list(ids)))
    return _cancel_ids(session, [i for i in session.exec(query).all() if i is not None])


def _cancel_ids(session: Session, found: list[int]) -> list[int]:
    if not found:
        return []
    session.execute(
        update(Deadline)
        .where(col(Deadline.id).in_(found), col(Deadline.status) == DeadlineStatus.pending)
        .values(status=DeadlineStatus.cancelled)
    )
    for deadline_id in found:
        after_commit_batch(session, _nudge_committed, ("cancelled", deadline_id))
    return found


def replace(
    session: Session,
    *,
    kind: DeadlineKind | str,
    due_at: datetime,
    app_id: str | None,
    ref: str | None = None,
    payload: dict[str, Any] | None = None,
    flush: bool = True,
) -> Deadline:
    """Cancel the pending deadline(s) of this app, kind and ref, and schedule the new one, atomically."""
    cancel(session, app_id=app_id, kinds=[kind], ref=ref)
    return schedule(session, kind=kind, due_at=due_at, app_id=app_id, ref=ref, payload=payload, flush=flush)


def pending_for(session: Session, app_id: str) -> list[Deadline]:
    """The app's pending deadlines, soonest first."""
    query = select(Deadline).where(Deadline.app_id == app_id, Deadline.status == DeadlineStatus.pending)
    return list(session.exec(query.order_by(col(Deadline.due_at), col(Deadline.id))).all())


# ----------------------------------------------------------------------------- preloading
#
# A change to many apps in one transaction (an owner leaving with hundreds) would read each app's
# pending deadlines and approval requests several times, a statement each. `preloaded` reads them
# for all the apps at once; `cancel`, `reschedule_app` and `approvals.closing.cancel_open` then use
# those rows. They stay current: rows added to the session join them (the listener below), and the
# bulk UPDATEs that cancel or decide rows update the loaded objects (synchronize_session).

_PRELOADED = "timers_preloaded"


@contextmanager
def preloaded(session: Session, app_ids: Iterable[str]) -> Iterator[None]:
    """Within the block, the pending deadlines and approval requests of `app_ids` are read from memory."""
    ids = sorted(set(app_ids))
    deadlines: dict[str, list[Deadline]] = {app_id: [] for app_id in ids}
    approvals: dict[str, list[ApprovalRequest]] = {app_id: [] for app_id in ids}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        for row in session.exec(
            select(Deadline).where(col(Deadline.app_id).in_(chunk), Deadline.status == DeadlineStatus.pending)
        ).all():
            deadlines[str(row.app_id)].append(row)
        for request in session.exec(
            select(ApprovalRequest).where(
                col(ApprovalRequest.app_id).in_(chunk), ApprovalRequest.status == ApprovalStatus.pending
            )
        ).all():
            approvals[request.app_id].append(request)
    session.info[_PRELOADED] = (deadlines, approvals)
    try:
        yield
    finally:
        session.info.pop(_PRELOADED, None)


@event.listens_for(OrmSession, "transient_to_pending")
def _track_added(session: OrmSession, obj: Any) -> None:
    loaded = session.info.get(_PRELOADED)
    if loaded is None:
        return
    if isinstance(obj, Deadline) and obj.app_id in loaded[0]:
        loaded[0][obj.app_id].append(obj)
    elif isinstance(obj, ApprovalRequest) and obj.app_id in loaded[1]:
        loaded[1][obj.app_id].append(obj)


@event.listens_for(OrmSession, "after_transaction_end")
def _drop_preloaded(session: OrmSession, transaction: SessionTransaction) -> None:
    # A savepoint rolled back (or the transaction ended) may have taken loaded rows' changes away.
    if transaction.origin is not SessionTransactionOrigin.SUBTRANSACTION:
        session.info.pop(_PRELOADED, None)


def _known_pending(session: Session, app_id: str) -> list[Deadline] | None:
    loaded = session.info.get(_PRELOADED)
    if loaded is None or app_id not in loaded[0]:
        return None
    return [row for row in loaded[0][app_id] if row.status == DeadlineStatus.pending]


def known_pending_approvals(session: Session, app_id: str) -> list[ApprovalRequest] | None:
    """The app's pending approval requests when `preloaded` holds them, else None (query them)."""
    loaded = session.info.get(_PRELOADED)
    if loaded is None or app_id not in loaded[1]:
        return None
    return [row for row in loaded[1][app_id] if row.status == ApprovalStatus.pending]


# ----------------------------------------------------------------------------- firing


def fire(session: Session, deadline_ids: Sequence[int], *, started_at: datetime | None = None) -> list[Deadline]:
    """Mark these deadlines fired (only those still pending) and emit each one's event.

    The compare-and-set on `status` makes a repeated delivery a no-op: only the call that moved a
    row from pending to fired emits its event, with a dedup key derived from the deadline id.
    """
    if not deadline_ids:
        return []
    now = started_at or utcnow()
    won = session.execute(
        update(Deadline)
        .where(col(Deadline.id).in_(list(deadline_ids)), col(Deadline.status) == DeadlineStatus.pending)
        .values(status=DeadlineStatus.fired, fired_at=now)
        .returning(col(Deadline.id))
    ).all()
    ids = [row[0] for row in won]
    if not ids:
        return []
    rows = list(session.exec(select(Deadline).where(col(Deadline.id).in_(ids)).order_by(col(Deadline.id))).all())
    for row in rows:
        event_type = KIND_EVENTS.get(row.kind)
        if event_type is None:
            continue
        assert row.id is not None
        emit(
            session,
            type=event_type,
            source="scheduler",
            app_id=row.app_id,
            payload={
                "deadline_id": row.id,
                "kind": row.kind,
                "ref": row.ref,
                "due_at": as_utc(row.due_at).isoformat(),
                **row.payload,
            },
            dedup_key=dedup_key(row.id),
        )
    return rows


# ----------------------------------------------------------------------------- per-app plan


@dataclass(frozen=True)
class Rescheduled:
    """What `reschedule_app` changed: ids created and cancelled, and how many were kept."""

    created: list[int]
    cancelled: list[int]
    kept: int


def reschedule_app(session: Session, app: MicroApp, policy: Policy, *, now: datetime | None = None) -> Rescheduled:
    """Make the app's pending deadlines match its stage, dates and the policy, in the caller's transaction.

    Call it after anything that moves an app's dates or stage (registration, approval, extension,
    transfer, orphaning, retirement, a new approval request): changed timers are replaced, timers that
    no longer apply are cancelled, and a timer that already fired for the same basis is not re-armed.
    """
    now = now or utcnow()
    approvals = known_pending_approvals(session, app.id)
    pending_approvals = (
        {str(a.id) for a in approvals}
        if approvals is not None
        else {
            str(i)
            for i in session.exec(
                select(ApprovalRequest.id).where(
                    ApprovalRequest.app_id == app.id, ApprovalRequest.status == ApprovalStatus.pending
                )
            ).all()
        }
    )
    kinds = deadline_plan.MANAGED_KINDS + deadline_plan.GUARDED_KINDS
    known = _known_pending(session, app.id)
    if known is not None and all(row.id is not None for row in known):
        existing: Sequence[Deadline] = [row for row in known if row.kind in kinds]
    else:
        existing = session.exec(
            select(Deadline).where(
                Deadline.app_id == app.id, Deadline.status == DeadlineStatus.pending, col(Deadline.kind).in_(kinds)
            )
        ).all()
    stale: list[int] = []
    by_key: dict[tuple[str, str | None], list[Deadline]] = {}
    for row in existing:
        if row.kind in deadline_plan.GUARDED_KINDS:
            if not deadline_plan.still_applies(app, row.kind, row.ref, pending_approvals) and row.id is not None:
                stale.append(row.id)
        else:
            by_key.setdefault((row.kind, row.ref), []).append(row)
    created: list[int] = []
    kept = 0
    for item in deadline_plan.plan(app, policy, now=now):
        rows = by_key.pop((item.kind, item.ref), [])
        keep = next((r for r in rows if as_utc(r.due_at) == item.due_at), None)
        stale += [r.id for r in rows if r is not keep and r.id is not None]
        if keep is not None:
            kept += 1
            continue
        if item.due_at <= now and _already_fired(session, app.id, item.kind, item.ref, item.basis_due or item.due_at):
            continue
        row = schedule(session, kind=item.kind, due_at=item.due_at, app_id=app.id, ref=item.ref, payload=item.payload)
        assert row.id is not None
        created.append(row.id)
    stale += [r.id for rows in by_key.values() for r in rows if r.id is not None]
    cancelled = cancel(session, app_id=app.id, ids=stale) if stale else []
    return Rescheduled(created=created, cancelled=cancelled, kept=kept)


def _already_fired(session: Session, app_id: str, kind: str, ref: str | None, due_at: datetime) -> bool:
    # Same ref, or same due time: a timer another feature scheduled for the same moment counts too.
    same = (
        or_(col(Deadline.due_at) == due_at, col(Deadline.ref) == ref)
        if ref is not None
        else col(Deadline.due_at) == due_at
    )
    query = select(Deadline.id).where(
        Deadline.app_id == app_id, Deadline.kind == kind, Deadline.status == DeadlineStatus.fired, same
    )
    return session.exec(query.limit(1)).first() is not None
