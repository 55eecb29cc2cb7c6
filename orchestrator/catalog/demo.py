"""The demo catalog: a handful of apps in different stages, their people, and an admin token.

Everything goes through the catalog services (`register_app`, `apply_action`), so the demo has the
same audit trail a real history would. The events those services emit are marked handled in the
same transaction: they describe what the demo already applied, and the pipeline must not replay
them (a review of an example.com repository would only fail).
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
from orchestrator.catalog.lifecycle import Action
from orchestrator.catalog.manifest import Manifest
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.catalog.service import apply_action, ensure_person, register_app
from orchestrator.clock import utcnow
from orchestrator.events import outbox
from orchestrator.events.models import Event, EventStatus

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
    for person in catalog.people:
        _add_person(session, person, now=now)
    for demo_app in catalog.apps:
        _add_app(session, demo_app, policy=policy, now=now, on_approved=on_approved)
    _mark_history_handled(session, [a.manifest.slug for a in catalog.apps], now=now)
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


def _add_person(session: Session, person: DemoPerson, *, now: datetime) -> None:
    fields: dict[str, Any] = {
        "name": person.name,
        "slack_user_id": person.slack_user_id,
        "manager_email": str(person.manager_email).lower() if person.manager_email else None,
        "active": person.active,
        "left_at": now - timedelta(days=person.left_days_ago) if person.left_days_ago is not None else None,
    }
    row = ensure_person(session, str(person.email), **fields)
    for key, value in fields.items():  # the person may already exist (a co-owner seen first)
        setattr(row, key, value)
    session.add(row)


def _add_app(
    session: Session, demo_app: DemoApp, *, policy: Policy, now: datetime, on_approved: OnApproved | None
) -> None:
    registered_at = now - timedelta(days=demo_app.age_days)
    app, _ = register_app(
        session,
        demo_app.manifest,
        actor=str(demo_app.manifest.owner),
        policy=policy,
        source="cli",
        dedup_key=f"demo:app.created:{demo_app.manifest.slug}",
        now=registered_at,
    )
    count = len(demo_app.steps)
    for index, step in enumerate(demo_app.steps):
        days_ago = step.days_ago if step.days_ago is not None else demo_app.age_days * (count - index) / (count + 1)
        _apply_step(session, app, step, policy=policy, at=now - timedelta(days=days_ago))
        if step.action is Action.approve and on_approved is not None:
            on_approved(session, app, policy=policy, actor=step.actor)


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
