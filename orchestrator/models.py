"""The catalog's tables (SQLModel): apps, people, events, deadlines, approvals, audit, API tokens.

Feature modules keep their own tables next to their code (reviews, credentials, …); they are all
imported by `orchestrator.tables` so migrations and tests see one metadata.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint, text
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from orchestrator.catalog.lifecycle import Stage
from orchestrator.clock import UTCDateTime, utcnow


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def enum_field(enum: type[StrEnum], *, default: Any = None, index: bool = False, nullable: bool = False) -> Any:
    """A StrEnum column stored as VARCHAR, not a native enum, so adding a value never needs an ALTER TYPE."""
    sa_enum = SAEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=32,
        values_callable=lambda e: [m.value for m in e],
    )
    return Field(default=default, sa_type=sa_enum, nullable=nullable, index=index)


def new_id() -> str:
    """A random, URL-safe identifier for events and similar rows."""
    return uuid.uuid4().hex


class DataClass(StrEnum):
    """How sensitive the data an app touches is; picks the policy that applies."""

    public = "public"
    internal = "internal"
    restricted = "restricted"
    regulated = "regulated"


class Role(StrEnum):
    """What an API token may do."""

    maker = "maker"
    approver = "approver"
    admin = "admin"


class Person(SQLModel, table=True):
    """Someone who owns, approves or decides: identified by email."""

    email: str = Field(primary_key=True, max_length=320)
    name: str = Field(default="", max_length=200)
    slack_user_id: str | None = Field(default=None, index=True, max_length=64)
    github_login: str | None = Field(default=None, index=True, max_length=100)
    manager_email: str | None = Field(default=None, max_length=320)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    left_at: datetime | None = _ts()


class MicroApp(SQLModel, table=True):
    """One catalogued micro-app and where it is in its lifecycle."""

    __tablename__ = "microapp"
    # Webhooks find an app by its repository URL whatever its case (orchestrator.events.github).
    __table_args__ = (Index("ix_microapp_repo_url_lower", text("lower(repo_url)")),)

    id: str = Field(primary_key=True, max_length=64, description="slug")
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    owner_email: str = Field(index=True, max_length=320)
    co_owners: list[str] = _json_list()
    team: str = Field(default="", max_length=200)
    data_class: DataClass = enum_field(DataClass, index=True)
    stage: Stage = enum_field(Stage, default=Stage.registered, index=True)
    # The stage to return to from expiring or orphaned.
    previous_stage: Stage | None = enum_field(Stage, nullable=True)
    repo_url: str | None = Field(default=None, index=True, max_length=500)
    default_branch: str | None = Field(default=None, max_length=200)
    connectors: list[str] = _json_list()
    requested_scopes: list[str] = _json_list()
    external_endpoints: list[str] = _json_list()
    llm: dict[str, Any] = _json_dict()
    manifest: dict[str, Any] = _json_dict()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    approved_at: datetime | None = _ts()
    expires_at: datetime | None = _ts(index=True)
    next_review_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()
    legal_hold: bool = False
    version: int = Field(default=1, description="bumped on every change; optimistic concurrency")

    @property
    def owners(self) -> frozenset[str]:
        """The owner and every co-owner."""
        return frozenset([self.owner_email, *self.co_owners])


class EventStatus(StrEnum):
    """Where an event is in the outbox → broker → handler pipeline."""

    pending = "pending"
    enqueued = "enqueued"
    handling = "handling"
    handled = "handled"
    failed = "failed"
    parked = "parked"


class Event(SQLModel, table=True):
    """A lifecycle event: the outbox row written in the same transaction as the change it reports."""

    __table_args__ = (Index("ix_event_status_received", "status", "received_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    type: str = Field(index=True, max_length=64)
    app_id: str | None = Field(default=None, index=True, max_length=64)
    source: str = Field(max_length=32, description="api, github, slack, scheduler, worker, cli")
    dedup_key: str = Field(unique=True, max_length=300)
    payload: dict[str, Any] = _json_dict()
    status: EventStatus = enum_field(EventStatus, default=EventStatus.pending)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    published_at: datetime | None = _ts()
    handled_at: datetime | None = _ts()


class DeadlineStatus(StrEnum):
    """A deadline waits (pending), has fired, or was replaced or cancelled."""

    pending = "pending"
    fired = "fired"
    cancelled = "cancelled"


class Deadline(SQLModel, table=True):
    """A due date the scheduler turns into a timer; the database is its source of truth."""

    __table_args__ = (Index("ix_deadline_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    app_id: str | None = Field(default=None, index=True, max_length=64)
    kind: str = Field(max_length=64, description="review_due, expiry_notice, expiry, approval_reminder, …")
    ref: str | None = Field(default=None, max_length=200, description="what it is about, e.g. an approval id")
    due_at: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    status: DeadlineStatus = enum_field(DeadlineStatus, default=DeadlineStatus.pending)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    fired_at: datetime | None = _ts()
    payload: dict[str, Any] = _json_dict()


class ApprovalKind(StrEnum):
    """What an approval request decides."""

    promotion = "promotion"
    extension = "extension"


class ApprovalStatus(StrEnum):
    """Pending until one decision is taken, exactly once."""

    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    changes_requested = "changes_requested"
    cancelled = "cancelled"


class ApprovalRequest(SQLModel, table=True):
    """A request for a human decision on an app, with where it was posted."""

    __tablename__ = "approval_request"

    id: int | None = Field(default=None, primary_key=True)
    app_id: str = Field(index=True, max_length=64)
    kind: ApprovalKind = enum_field(ApprovalKind, default=ApprovalKind.promotion)
    status: ApprovalStatus = enum_field(ApprovalStatus, default=ApprovalStatus.pending, index=True)
    cycle: int = Field(default=1, description="one request per app per cycle")
    requested_by: str = Field(max_length=320)
    decided_by: str | None = Field(default=None, max_length=320)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    review_id: int | None = None
    channel: str | None = Field(default=None, max_length=64)
    message_ts: str | None = Field(default=None, max_length=64)
    payload: dict[str, Any] = _json_dict()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    decided_at: datetime | None = _ts()

    __table_args__ = (UniqueConstraint("app_id", "kind", "cycle", name="uq_approval_app_kind_cycle"),)


class AuditEntry(SQLModel, table=True):
    """One append-only, hash-chained record of who did what to which app, and why."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, description="position in the chain; unique so writers cannot fork it")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    app_id: str | None = Field(default=None, index=True, max_length=64)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=100)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    data: dict[str, Any] = _json_dict()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ApiToken(SQLModel, table=True):
    """A bearer token for the API, stored only as a SHA-256 digest."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    role: Role = enum_field(Role)
    person_email: str | None = Field(default=None, max_length=320, description="who acts with it")
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    last_used_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
