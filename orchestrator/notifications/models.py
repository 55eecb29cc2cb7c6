"""Tables of the Slack side: outbound notifications (with their outcome) and inbound interactions.

Both are outbox rows. A `notification` is written in the caller's transaction and delivered by a
worker after commit; its unique `key` is also sent to Slack in the message metadata, so a retry can
find a post that went through before the worker lost track of it. A `slack_interaction` is a button
click or modal submission, committed before Slack gets its 200 and handled by a worker.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field


class NotificationStatus(StrEnum):
    """Where one outbound message is."""

    pending = "pending"  # written, not yet claimed by a worker
    sending = "sending"  # claimed under a lease; a post may or may not have reached Slack
    sent = "sent"  # Slack answered ok; channel_id/ts recorded
    held = "held"  # part of a flood: waits for the recipient's digest
    digested = "digested"  # delivered inside a digest
    logged = "logged"  # no Slack configured: written to the log instead
    skipped = "skipped"  # nothing left to do (e.g. an update for a message never posted)
    failed = "failed"  # a permanent error (unknown channel, bot not in channel, …)


class NotificationKind(StrEnum):
    """What a notification is; approval kinds are rendered from the database at send time."""

    approval_request = "approval_request"
    approval_escalation = "approval_escalation"
    approval_update = "approval_update"
    reminder = "reminder"
    notice = "notice"
    expiry_notice = "expiry_notice"
    digest = "digest"


class Notification(SQLModel, table=True):
    """One message to a person (DM) or a channel, delivered at least once and posted at most once."""

    __tablename__ = "notification"
    __table_args__ = (
        Index("ix_notification_recipient_created", "recipient", "created_at"),
        Index("ix_notification_status_created", "status", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, max_length=300, description="idempotency key, also sent as message metadata")
    kind: NotificationKind = enum_field(NotificationKind)
    recipient_type: str = Field(max_length=16, description="user (an email) or channel")
    recipient: str = Field(max_length=320)
    app_id: str | None = Field(default=None, max_length=64)
    approval_id: int | None = Field(default=None, index=True)
    text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    blocks: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: NotificationStatus = enum_field(NotificationStatus, default=NotificationStatus.pending)
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    digest_id: int | None = Field(default=None, index=True)
    channel_id: str | None = Field(default=None, max_length=64, description="the Slack channel id it went to")
    ts: str | None = Field(default=None, max_length=64)
    thread_ts: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class InteractionStatus(StrEnum):
    """Where one inbound Slack interaction is."""

    pending = "pending"
    handling = "handling"
    handled = "handled"
    failed = "failed"


class SlackInteraction(SQLModel, table=True):
    """A verified button click or modal submission, kept without its response_url (a capability)."""

    __tablename__ = "slack_interaction"
    __table_args__ = (Index("ix_slack_interaction_status_received", "status", "received_at"),)

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(unique=True, max_length=64, description="sha256 of the raw body: Slack retries repeat it")
    type: str = Field(max_length=32, description="block_actions or view_submission")
    action: str = Field(max_length=64)
    approval_id: int | None = Field(default=None, index=True)
    app_id: str | None = Field(default=None, max_length=64)
    slack_user_id: str = Field(max_length=64)
    slack_user_name: str = Field(default="", max_length=200)
    channel: str | None = Field(default=None, max_length=64)
    message_ts: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    retry_num: int = 0
    status: InteractionStatus = enum_field(InteractionStatus, default=InteractionStatus.pending)
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    outcome: str | None = Field(default=None, max_length=64)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    handled_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
