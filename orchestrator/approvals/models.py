"""The approval request table: one request for a human decision per app, kind and cycle."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field, json_dict_field, timestamp_field


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
    payload: dict[str, Any] = json_dict_field()
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    decided_at: datetime | None = timestamp_field()

    __table_args__ = (UniqueConstraint("app_id", "kind", "cycle", name="uq_approval_app_kind_cycle"),)
