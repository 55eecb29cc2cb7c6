"""The catalog's tables: micro-apps and the people who own, approve or decide."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text, text
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
    __table_args__ = (Index("ix_microapp_repo_url_lower", text("lower(repo_url)")),)

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
