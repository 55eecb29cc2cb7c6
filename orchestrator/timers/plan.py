"""Which deadlines an app should have right now, from its stage, its dates and the policy (pure).

`orchestrator.timers.service.reschedule_app` compares this plan with the rows in the database and
replaces or cancels what differs; deadlines other features schedule (approval reminders, the
owner-left grace) are only cancelled once they no longer apply. A deadline's `ref` names the date it
was computed from, so a timer that already fired for the same basis is never planned twice, and a
new basis (an extension moves the expiry) re-arms the notices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.catalog.lifecycle import ACTIVE_STAGES, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy, whole
from orchestrator.clock import as_utc
from orchestrator.timers.models import DeadlineKind

# The kinds this plan computes for an app.
MANAGED_KINDS = (DeadlineKind.review_due, DeadlineKind.expiry_notice, DeadlineKind.expiry, DeadlineKind.inactivity)
# Kinds other features schedule (approval requests, owner departures); the plan only cancels them
# once they no longer apply.
GUARDED_KINDS = (
    DeadlineKind.approval_reminder,
    DeadlineKind.approval_escalation,
    DeadlineKind.owner_left_grace,
    DeadlineKind.owner_handover_escalation,
)


@dataclass(frozen=True)
class Planned:
    """One deadline the app should have."""

    kind: DeadlineKind
    ref: str | None
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    # When it was meant to fire; differs from due_at only for a passed notice moved to now.
    basis_due: datetime | None = None


def _iso(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="seconds")


def _expiry(app: MicroApp, policy: Policy, now: datetime) -> list[Planned]:
    if app.expires_at is None or app.stage not in ACTIVE_STAGES | {Stage.expiring}:
        return []
    expires = as_utc(app.expires_at)
    basis = _iso(expires)
    planned = [Planned(DeadlineKind.expiry, basis, expires, {"expires_at": basis})]
    rules = policy.for_class(app.data_class)
    passed: list[int | float] = []
    for days in map(whole, rules.expiry_notice_days):
        due = expires - timedelta(days=days)
        if due > now:
            planned.append(
                Planned(DeadlineKind.expiry_notice, f"{days}d:{basis}", due, {"days_before": days, "expires_at": basis})
            )
        else:
            passed.append(days)
    if passed and expires > now:
        # Notices whose time has passed collapse into one, now: the one closest to the expiry.
        days = min(passed)
        payload = {"days_before": days, "expires_at": basis}
        meant = expires - timedelta(days=days)
        planned.append(Planned(DeadlineKind.expiry_notice, f"{days}d:{basis}", now, payload, basis_due=meant))
    return planned


def _review(app: MicroApp) -> list[Planned]:
    if app.stage is not Stage.production or app.next_review_at is None:
        return []
    due = as_utc(app.next_review_at)
    return [Planned(DeadlineKind.review_due, _iso(due), due)]


def _inactivity(app: MicroApp, policy: Policy) -> list[Planned]:
    if app.stage not in ACTIVE_STAGES:
        return []
    base = as_utc(app.last_used_at or app.approved_at or app.created_at)
    days = whole(policy.for_class(app.data_class).inactivity_days)
    return [Planned(DeadlineKind.inactivity, _iso(base), base + timedelta(days=days), {"inactivity_days": days})]


def still_applies(app: MicroApp, kind: str, ref: str | None, pending_approval_ids: set[str]) -> bool:
    """Whether a deadline of a guarded kind, scheduled by another feature, should stay pending."""
    if app.stage in (Stage.sunsetting, Stage.retired):
        return False
    if kind in (DeadlineKind.owner_left_grace, DeadlineKind.owner_handover_escalation):
        return app.stage is Stage.orphaned
    if kind in (DeadlineKind.approval_reminder, DeadlineKind.approval_escalation):
        return ref in pending_approval_ids
    return True


def plan(app: MicroApp, policy: Policy, *, now: datetime) -> list[Planned]:
    """Every managed deadline `app` should have at `now` (none once it is sunsetting or retired)."""
    return [*_expiry(app, policy, now), *_review(app), *_inactivity(app, policy)]
