"""The event table: the outbox row of every lifecycle event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field, json_dict_field, new_id, timestamp_field
from orchestrator.events.enums import EventStatus as EventStatus  # re-exported beside the tables


class Event(SQLModel, table=True):
    """A lifecycle event: the outbox row written in the same transaction as the change it reports."""

    __table_args__ = (Index("ix_event_status_received", "status", "received_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    type: str = Field(index=True, max_length=64)
    app_id: str | None = Field(default=None, index=True, max_length=64)
    source: str = Field(max_length=32, description="api, github, slack, scheduler, worker, cli")
    dedup_key: str = Field(unique=True, max_length=300)
    payload: dict[str, Any] = json_dict_field()
    status: EventStatus = enum_field(EventStatus, default=EventStatus.pending)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    published_at: datetime | None = timestamp_field()
    handled_at: datetime | None = timestamp_field()
