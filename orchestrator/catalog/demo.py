"""The demo catalog: a handful of apps in different stages, their people, and an admin token.

Everything goes through the same services as real data (`register_app`, `apply_action`, the
approval's credential hand-over, a real sunset run), so the demo has the same audit trail a real
history would and obeys every invariant: a retired demo app had its credentials revoked and its
records archived by the sunset run itself (run right after the demo's transaction commits). The
events those services emit are marked handled: they describe what the demo already applied, and the
pipeline must not replay them (a review of an example.com repository would only fail). For the
same reason the notifications the history wrote are not sent, except those of apps still active.

With Slack configured (SLACK_BOT_TOKEN), demo people get their Slack ids from `users.lookupByEmail`
(none when the workspace has no such email) instead of the catalog's made-up ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.auth.models import Role
from orchestrator.auth.service import create_token
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, Action
from orchestrator.catalog.manifest import Manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.catalog.service import apply_action, ensure_person, register_app
from orchestrator.clock import utcnow
from orchestrator.db import after_commit
from orchestrator.events import outbox
from orchestrator.events.models import Event, EventStatus
from orchestrator.logs import get_logger

log = get_logger(__name__)

DEMO_CATALOG = Path(__file__).with_name("demo_catalog.yaml")
DEMO_ACTOR = "demo"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoPerson(_Strict):
    """Someone in the demo organisation."""

    email: EmailStr
    name: str
    slack_user_id: str | None = None
    manager_email: EmailStr | None = None
    active: bool = True
    left_days_ago: int | None = None


class DemoStep(_Strict):
    """One lifecycle action applied to a demo app."""

    action: Action
    actor: str
    reason: str = ""
    days_ago: float | None = Field(default=None, description="when it happened; spread evenly when absent")


class DemoApp(_Strict):
    """A demo app: its manifest, how long ago it was registered and what happened to it since."""

    manifest: Manifest
    age_days: float = 0
    steps: list[DemoStep] = Field(default_factory=list)
    pending_approval: str | None = Field(
        default=None, description="after the steps, a promotion approval request is opened with this reason"
    )


class DemoAdmin(_Strict):
    """The demo's admin user, who gets the printed API token."""

    email: EmailStr
    name: str
    token_name: str


class DemoCatalog(_Strict):
    """The whole demo file."""

    admin: DemoAdmin
    people: list[DemoPerson]
    apps: list[DemoApp]


@dataclass(frozen=True)
class DemoResult:
    """What `load_demo` did: the apps it loaded (0 when skipped) and the admin token, if created."""

    loaded: bool
    apps: int
    existing_apps: int
    token: str | None = None


def read_catalog(path: Path = DEMO_CATALOG) -> DemoCatalog:
    """The demo catalog, validated."""
    return DemoCatalog.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def count_apps(session: Session) -> int:
    """How many apps the catalog holds."""
    return int(session.exec(select(func.count()).select_from(MicroApp)).one())


# What happens when the demo approves an app (the CLI hands over its service credential, as an approval does).
OnApproved = Callable[..., Any]


def load_demo(
    session: Session, *, policy: Policy, catalog: DemoCatalog | None = None, on_approved: OnApproved | None = None
) -> DemoResult:
    """Load the demo into an empty catalog in the caller's transaction; skip when it has apps.

    `on_approved(session, app, policy=, actor=)` runs after each `approve` step of the history.
    """
    existing = count_apps(session)
    if existing:
        return DemoResult(loaded=False, apps=0, existing_apps=existing)
    catalog = catalog or read_catalog()
    now = utcnow()
    slack_ids = _slack_ids([str(p.email) for p in catalog.people])
    # Everyone was still here when the apps were registered (registration refuses an owner who left);
    # those who left go before the apps' histories are replayed.
    for person in catalog.people:
        _add_person(session, person, now=now, slack_ids=slack_ids, arrived_only=True)
    registered = [(demo_app, _register(session, demo_app, policy=policy, now=now)) for demo_app in catalog.apps]
    for person in catalog.people:
        _add_person(session, person, now=now, slack_ids=slack_ids)
    sunsets: list[str] = []
    for demo_app, app in registered:
        _replay(session, demo_app, app, policy=policy, now=now, on_approved=on_approved, sunsets=sunsets)
    app_ids = [a.manifest.slug for a in catalog.apps]
    _mark_history_handled(session, app_ids, now=now)
    _withhold_stale_notices(session, app_ids)
    if sunsets:
        after_commit(session, lambda: _run_sunsets(sunsets, app_ids, policy=policy))
    token = create_token(
        session, name=catalog.admin.token_name, role=Role.admin, person_email=catalog.admin.email, actor=DEMO_ACTOR
    )
    audit.record(
        session,
        actor=DEMO_ACTOR,
        action=AuditAction.demo_loaded,
        reason="demo catalog loaded into an empty database",
        data={"apps": len(catalog.apps), "people": len(catalog.people)},
    )
    return DemoResult(loaded=True, apps=len(catalog.apps), existing_apps=0, token=token)


def _slack_ids(emails: list[str]) -> dict[str, str | None] | None:
    """Each email's Slack id from the configured workspace, or None when Slack is not configured."""
    from orchestrator.integrations.slack import from_settings

    client = from_settings()
    if client is None:
        return None
    return {email.lower(): client.lookup_user(email=email) for email in emails}


def _add_person(
    session: Session,
    person: DemoPerson,
    *,
    now: datetime,
    slack_ids: dict[str, str | None] | None,
    arrived_only: bool = False,
) -> None:
    # With a real workspace the catalog's made-up ids would point at nobody (or at someone else).
    slack_id = person.slack_user_id if slack_ids is None else slack_ids.get(str(person.email).lower())
    fields: dict[str, Any] = {
        "name": person.name,
        "slack_user_id": slack_id,
        "manager_email": str(person.manager_email).lower() if person.manager_email else None,
        "active": person.active,
        "left_at": now - timedelta(days=person.left_days_ago) if person.left_days_ago is not None else None,
    }
    if arrived_only:
        fields["active"], fields["left_at"] = True, None
    row = ensure_person(session, str(person.email), **fields)
    for key, value in fields.items():  # the person may already exist (a co-owner seen first)
        setattr(row, key, value)
    session.add(row)


def _register(session: Session, demo_app: DemoApp, *, policy: Policy, now: datetime) -> MicroApp:
    app, _ = register_app(
        session,
        demo_app.manifest,
        actor=str(demo_app.manifest.owner),
        policy=policy,
        source="cli",
        dedup_key=f"demo:app.created:{demo_app.manifest.slug}",
        now=now - timedelta(days=demo_app.age_days),
    )
    return app


def _replay(
    session: Session,
    demo_app: DemoApp,
    app: MicroApp,
    *,
    policy: Policy,
    now: datetime,
    on_approved: OnApproved | None,
    sunsets: list[str],
) -> None:
    count = len(demo_app.steps)
    for index, step in enumerate(demo_app.steps):
        days_ago = step.days_ago if step.days_ago is not None else demo_app.age_days * (count - index) / (count + 1)
        _apply_step(session, app, step, policy=policy, at=now - timedelta(days=days_ago))
        if step.action is Action.approve and on_approved is not None:
            on_approved(session, app, policy=policy, actor=step.actor)
        if step.action is Action.retire:
            # A real sunset run: it revokes the app's credentials and archives its records.
            from orchestrator.sunset.flows import start_sunset

            start_sunset(session, app, trigger="manual", actor=step.actor, reason=step.reason, enqueue=False)
            sunsets.append(app.id)
    if demo_app.pending_approval:
        # As a passing review would: the request goes to the approver group (Slack, when configured).
        from orchestrator.approvals.flows import request_approval
        from orchestrator.approvals.models import ApprovalKind
        from orchestrator.catalog.service import open_approval

        approval, _ = open_approval(
            session, app, kind=ApprovalKind.promotion, requested_by=app.owner_email, reason=demo_app.pending_approval
        )
        assert approval.id is not None
        request_approval(session, approval.id, policy=policy)


def _apply_step(session: Session, app: MicroApp, step: DemoStep, *, policy: Policy, at: datetime) -> None:
    apply_action(session, app, step.action, actor=step.actor, reason=step.reason, policy=policy, now=at)


def _mark_history_handled(session: Session, app_ids: list[str], *, now: datetime) -> None:
    events = session.exec(
        select(Event).where(col(Event.app_id).in_(app_ids), Event.status == EventStatus.pending)
    ).all()
    for event in events:
        event.status = EventStatus.handled
        event.handled_at = now
        session.add(event)
    # Nothing to publish after commit either: these events are history, not work.
    outbox.forget(session, {e.id for e in events})
    session.flush()


def _withhold_stale_notices(session: Session, app_ids: list[str]) -> None:
    """The history's notifications about apps no longer active are old news: never send them."""
    from orchestrator.notifications.models import Notification, NotificationStatus

    inactive = session.exec(
        select(MicroApp.id).where(col(MicroApp.id).in_(app_ids), col(MicroApp.stage).not_in(list(ACTIVE_STAGES)))
    ).all()
    if not inactive:
        return
    rows = session.exec(
        select(Notification).where(
            col(Notification.app_id).in_(list(inactive)), Notification.status == NotificationStatus.pending
        )
    ).all()
    for row in rows:
        row.status = NotificationStatus.skipped
        session.add(row)
    session.flush()


def _run_sunsets(sunsets: list[str], app_ids: list[str], *, policy: Policy) -> None:
    """Run the demo's sunsets to the end (after the demo committed), then file what they emitted as history.

    A run that cannot finish here (say the archive store is unreachable) is left to the scheduler's
    resume sweep, like any other.
    """
    from orchestrator.db import session_scope
    from orchestrator.sunset.flows import advance

    for app_id in sunsets:
        run = advance(app_id, policy=policy)
        if run.status.value != "done":
            log.warning("demo sunset did not finish; the resume sweep will go on with it", app_id=app_id)
    with session_scope() as session:
        _mark_history_handled(session, app_ids, now=utcnow())
        _withhold_stale_notices(session, app_ids)
