"""The audit table: append-only, hash-chained entries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import json_dict_field


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
    data: dict[str, Any] = json_dict_field()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditCheckpoint(SQLModel, table=True):
    """A signed checkpoint of the chain's head, as also written to the archive store.

    Not part of the chain (recording one there would move the head it anchors). Verification
    does not trust this table alone: each row carries its Ed25519 signature, and the archive
    store holds a copy out of the database's reach.
    """

    __tablename__ = "audit_checkpoint"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True, description="the head entry's seq when the checkpoint was made")
    hash: str = Field(max_length=64, description="the head entry's hash")
    at: datetime = Field(sa_type=UTCDateTime(), nullable=False, description="when the checkpoint was signed")
    key_id: str = Field(max_length=64)
    signature: str = Field(max_length=200, description="base64url Ed25519 signature over the signed fields")
    location: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_by: str = Field(default="", max_length=320)
