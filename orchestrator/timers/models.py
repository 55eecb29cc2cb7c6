"""The deadline table: every due date of the system, the scheduler's source of truth."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field, json_dict_field, timestamp_field


class DeadlineStatus(StrEnum):
    """A deadline waits (pending), has fired, or was replaced or cancelled."""

    pending = "pending"
    fired = "fired"
    cancelled = "cancelled"


class DeadlineKind(StrEnum):
    """What a deadline is for; each maps onto the lifecycle event it emits when it fires."""

    review_due = "review_due"
    expiry_notice = "expiry_notice"
    expiry = "expiry"
    approval_reminder = "approval_reminder"
    approval_escalation = "approval_escalation"
    owner_left_grace = "owner_left_grace"
    owner_handover_escalation = "owner_handover_escalation"
    inactivity = "inactivity"
    retention_purge = "retention_purge"
    # A deadline that only proves the timer path works (benchmark, smoke checks): no event.
    probe = "probe"


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
    fired_at: datetime | None = timestamp_field()
    payload: dict[str, Any] = json_dict_field()
