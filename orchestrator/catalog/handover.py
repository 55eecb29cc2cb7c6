"""Where each orphaned or suspended app is in the hand-over chain that `catalog.owners` runs.

The chain (catalog/owners.py): a co-owner takes over at once when there is one; otherwise the app
is orphaned, the leaver's manager is asked with a deadline (`owner_handover_escalation`), then IT's
group (the data class's approver group), and when the grace period (`owner_left_grace`) ends the
app is suspended. Each ask is an `owner.handover_asked` audit entry whose `step` is `manager` or
`it_group`. This module reads those entries and the pending deadlines back; it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import as_utc
from orchestrator.timers.models import Deadline, DeadlineKind, DeadlineStatus

# How `catalog.owners.transfer_owner` names a co-owner's promotion after the owner left.
CO_OWNER_PROMOTED = "co-owner promoted"


class Step(StrEnum):
    """The steps of the chain, in order."""

    co_owner = "co_owner"
    manager_asked = "manager_asked"
    it_group_asked = "it_group_asked"
    grace_period = "grace_period"
    suspended = "suspended"


LABELS = {
    Step.co_owner: "Co-owner took over",
    Step.manager_asked: "Manager asked",
    Step.it_group_asked: "IT group asked",
    Step.grace_period: "Grace period",
    Step.suspended: "Suspended",
}


@dataclass(frozen=True)
class Position:
    """One app's place in the chain: the step, who was asked and when, and the step's deadline."""

    app_id: str
    step: Step
    asked: str | None
    asked_at: datetime | None
    deadline: datetime | None
    then: str  # what happens at the deadline
    grace_until: datetime | None  # when the app is suspended if nobody takes it over

    @property
    def label(self) -> str:
        """The step's name for people."""
        return LABELS[self.step]


def positions(session: Session, apps: Sequence[MicroApp]) -> dict[str, Position]:
    """The chain position of each orphaned or suspended app of `apps` (other apps are left out)."""
    wanted = {a.id: a for a in apps if a.stage in (Stage.orphaned, Stage.suspended)}
    if not wanted:
        return {}
    pending: dict[tuple[str, str], datetime] = {}
    rows = session.exec(
        select(Deadline).where(
            col(Deadline.app_id).in_(list(wanted)),
            col(Deadline.status) == DeadlineStatus.pending,
            col(Deadline.kind).in_([DeadlineKind.owner_left_grace, DeadlineKind.owner_handover_escalation]),
        )
    ).all()
    for row in rows:
        assert row.app_id is not None
        key = (row.app_id, row.kind)
        pending[key] = min(as_utc(row.due_at), pending.get(key, as_utc(row.due_at)))
    last_ask: dict[str, AuditEntry] = {}
    suspended_at: dict[str, datetime] = {}
    entries = session.exec(
        select(AuditEntry)
        .where(
            col(AuditEntry.app_id).in_(list(wanted)),
            col(AuditEntry.action).in_([AuditAction.owner_handover_asked.value, AuditAction.lifecycle_suspend.value]),
        )
        .order_by(col(AuditEntry.seq))
    ).all()
    for entry in entries:
        assert entry.app_id is not None
        if entry.action == AuditAction.owner_handover_asked.value:
            last_ask[entry.app_id] = entry
        else:
            suspended_at[entry.app_id] = as_utc(entry.at)
    found: dict[str, Position] = {}
    for app_id, app in wanted.items():
        grace = pending.get((app_id, DeadlineKind.owner_left_grace))
        if app.stage is Stage.suspended:
            found[app_id] = Position(
                app_id, Step.suspended, None, suspended_at.get(app_id), None, "a new owner brings it back", None
            )
            continue
        ask = last_ask.get(app_id)
        asked = str(ask.data.get("asked")) if ask is not None else None
        asked_at = as_utc(ask.at) if ask is not None else None
        suspend = "the app is suspended and its credentials revoked"
        if ask is not None and ask.data.get("step") == "manager":
            escalation = pending.get((app_id, DeadlineKind.owner_handover_escalation))
            found[app_id] = Position(
                app_id, Step.manager_asked, asked, asked_at, escalation, "IT's group is asked", grace
            )
        elif ask is not None:
            found[app_id] = Position(app_id, Step.it_group_asked, asked, asked_at, grace, suspend, grace)
        else:
            found[app_id] = Position(app_id, Step.grace_period, None, None, grace, suspend, grace)
    return found


@dataclass(frozen=True)
class Takeover:
    """A co-owner who became the owner because the owner left (the first step of the chain)."""

    app_id: str
    new_owner: str
    former_owner: str
    at: datetime


def co_owner_takeovers(session: Session, since: datetime, *, limit: int = 200) -> list[Takeover]:
    """Co-owners promoted since `since` because the owner left, newest first."""
    entries = session.exec(
        select(AuditEntry)
        .where(
            col(AuditEntry.action) == AuditAction.app_owner_transferred.value,
            col(AuditEntry.at) >= since,
            col(AuditEntry.reason).like(f"%{CO_OWNER_PROMOTED}"),
        )
        .order_by(col(AuditEntry.seq).desc())
        .limit(limit)
    ).all()
    return [
        Takeover(e.app_id, str(e.data.get("to", "")), str(e.data.get("from", "")), as_utc(e.at))
        for e in entries
        if e.app_id is not None
    ]
