"""API tokens and the roles they carry."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from orchestrator.auth.enums import Role as Role  # re-exported beside the tables
from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field, timestamp_field


class ApiToken(SQLModel, table=True):
    """A bearer token for the API, stored only as a SHA-256 digest."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    role: Role = enum_field(Role)
    person_email: str | None = Field(default=None, max_length=320, description="who acts with it")
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    last_used_at: datetime | None = timestamp_field()
    revoked_at: datetime | None = timestamp_field()
