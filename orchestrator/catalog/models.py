"""The catalog's tables: micro-apps, who owns each, and the people who own, approve or decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, Index, String, Text, event, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import get_history
from sqlmodel import Field, SQLModel

from orchestrator.catalog.enums import DataClass as DataClass  # re-exported beside the tables
from orchestrator.catalog.lifecycle import Stage
from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field, json_dict_field, json_list_field, timestamp_field


class Person(SQLModel, table=True):
    """Someone who owns, approves or decides: identified by email."""

    email: str = Field(primary_key=True, max_length=320)
    name: str = Field(default="", max_length=200)
    slack_user_id: str | None = Field(default=None, index=True, max_length=64)
    github_login: str | None = Field(default=None, index=True, max_length=100)
    manager_email: str | None = Field(default=None, max_length=320)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    left_at: datetime | None = timestamp_field()


class MicroApp(SQLModel, table=True):
    """One catalogued micro-app and where it is in its lifecycle."""

    __tablename__ = "microapp"
    # Webhooks find an app by its repository URL whatever its case (orchestrator.events.github).
    __table_args__ = (
        Index("ix_microapp_repo_url_lower", text("lower(repo_url)")),
        # A filtered page in id order reads its rows off these, not a sort of every match.
        Index("ix_microapp_stage_id", "stage", "id"),
        Index("ix_microapp_data_class_id", "data_class", "id"),
    )

    id: str = Field(primary_key=True, max_length=64, description="slug")
    name: str = Field(max_length=200)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    owner_email: str = Field(index=True, max_length=320)
    # Who registered the app: a party to it, who may not decide its approvals (approvals.service.refusal).
    registered_by: str | None = Field(default=None, max_length=320)
    co_owners: list[str] = json_list_field()
    team: str = Field(default="", max_length=200)
    data_class: DataClass = enum_field(DataClass, index=True)
    stage: Stage = enum_field(Stage, default=Stage.registered, index=True)
    # The stage to return to from expiring or orphaned.
    previous_stage: Stage | None = enum_field(Stage, nullable=True)
    repo_url: str | None = Field(default=None, index=True, max_length=500)
    default_branch: str | None = Field(default=None, max_length=200)
    connectors: list[str] = json_list_field()
    requested_scopes: list[str] = json_list_field()
    external_endpoints: list[str] = json_list_field()
    llm: dict[str, Any] = json_dict_field()
    manifest: dict[str, Any] = json_dict_field()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    approved_at: datetime | None = timestamp_field()
    expires_at: datetime | None = timestamp_field(index=True)
    next_review_at: datetime | None = timestamp_field()
    last_used_at: datetime | None = timestamp_field()
    legal_hold: bool = False
    version: int = Field(default=1, description="bumped on every change; optimistic concurrency")

    @property
    def owners(self) -> frozenset[str]:
        """The owner and every co-owner."""
        return frozenset([self.owner_email, *self.co_owners])


class AppOwner(SQLModel, table=True):
    """One person's ownership of one app (owner or co-owner), kept so "apps of X" is an index lookup.

    `MicroApp.owner_email` and `MicroApp.co_owners` stay what code reads and writes; these rows are
    written from them at every flush (`_sync_app_owners`), so no code path can forget them.
    """

    __tablename__ = "app_owner"
    __table_args__ = (Index("ix_app_owner_email_app", "email", "app_id"),)

    app_id: str = Field(sa_column=Column(String(64), ForeignKey("microapp.id", ondelete="CASCADE"), primary_key=True))
    email: str = Field(primary_key=True, max_length=320)
    co_owner: bool = Field(default=False, description="False for the owner, True for a co-owner")


def ownership(app: MicroApp) -> dict[str, bool]:
    """The rows `app_owner` must hold for `app`: email (lower case) -> is a co-owner."""
    rows = {email.lower(): True for email in app.co_owners if email}
    rows[app.owner_email.lower()] = False
    return rows


@event.listens_for(Session, "after_flush")
def _sync_app_owners(session: Session, _context: Any) -> None:
    # after_flush: the apps' rows exist (the foreign key holds) and new/dirty and the attribute
    # history still describe what this flush wrote. Plain SQL on the flush's connection: adding
    # objects here would need another flush.
    # `session.new` builds a new set on every access, and `inspect(obj).attrs` a view of every
    # attribute: taken once, and the two histories read directly (a flush of hundreds of apps, an
    # owner leaving, spent a tenth of a second here).
    new = session.new
    changed = [obj for obj in new if isinstance(obj, MicroApp)]
    changed += [
        obj
        for obj in session.dirty
        if isinstance(obj, MicroApp)
        and obj not in new
        and (get_history(obj, "owner_email").has_changes() or get_history(obj, "co_owners").has_changes())
    ]
    if not changed:
        return
    table = AppOwner.__table__  # type: ignore[attr-defined]  # SQLModel sets it on table classes
    connection = session.connection()
    connection.execute(table.delete().where(table.c.app_id.in_([app.id for app in changed])))
    connection.execute(
        table.insert(),
        [
            {"app_id": app.id, "email": email, "co_owner": co_owner}
            for app in changed
            for email, co_owner in ownership(app).items()
        ],
    )
