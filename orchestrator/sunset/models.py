"""Tables of the sunset job and the archive: one resumable run per app, one row per archive written."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field


class SunsetStep(StrEnum):
    """The steps of a sunset, in order; `done` once the app is retired."""

    freeze = "freeze"
    revoke = "revoke"
    archive = "archive"
    retire = "retire"
    done = "done"


class SunsetStatus(StrEnum):
    """Running until done; blocked while a credential could not be revoked (a zombie)."""

    running = "running"
    blocked = "blocked"
    done = "done"


class SunsetRun(SQLModel, table=True):
    """The sunset of one app: which step it is at and what each finished step recorded."""

    __tablename__ = "sunset_run"

    id: int | None = Field(default=None, primary_key=True)
    app_id: str = Field(unique=True, max_length=64)
    status: SunsetStatus = enum_field(SunsetStatus, default=SunsetStatus.running)
    step: SunsetStep = enum_field(SunsetStep, default=SunsetStep.freeze)
    steps: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False), description="step → what it recorded"
    )
    trigger: str = Field(max_length=64, description="app.expired, app.retire_requested, owner.grace_over, manual")
    actor: str = Field(max_length=320)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    attempts: int = Field(default=0, description="how many times a worker picked the run up")
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    archive_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False, index=True)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    lease_until: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime(),
        nullable=True,
        index=True,
        description="a worker runs the sunset until then (renewed while it runs); the resume sweep waits for it",
    )


class ArchiveStatus(StrEnum):
    """Stored until the retention purge deletes it."""

    stored = "stored"
    purged = "purged"


class ArchiveRecord(SQLModel, table=True):
    """An archive of a retired app: where it is, its digest (also in the audit chain), its manifest."""

    __tablename__ = "app_archive"

    id: int | None = Field(default=None, primary_key=True)
    app_id: str = Field(index=True, max_length=64)
    key: str = Field(max_length=500, description="the object's key in the archive store")
    uri: str = Field(max_length=1000)
    sha256: str = Field(max_length=64)
    size: int = 0
    manifest_sha256: str = Field(max_length=64)
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: ArchiveStatus = enum_field(ArchiveStatus, default=ArchiveStatus.stored)
    created_by: str = Field(max_length=320)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    retain_until: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    purged_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
