"""The credential ledger: one row per credential an app holds, never the secret itself."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.credentials.enums import CredentialStatus as CredentialStatus  # re-exported beside the tables
from orchestrator.db import enum_field


class Credential(SQLModel, table=True):
    """One credential issued to (or registered for) an app, as the sunset job must revoke it."""

    __tablename__ = "credential"
    __table_args__ = (UniqueConstraint("provider", "external_ref", name="uq_credential_provider_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    app_id: str = Field(index=True, max_length=64)
    provider: str = Field(max_length=64, description="name of the provider that issued it")
    external_ref: str = Field(max_length=300, description="the provider's id for it (a jti, a token id, …)")
    subject: str = Field(default="", max_length=320, description="who or what it was issued to")
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: CredentialStatus = enum_field(CredentialStatus, default=CredentialStatus.live, index=True)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)
    revoke_attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class KeyStatus(StrEnum):
    """A key is published while next, signs (from `activates_at`) while active, only verifies while
    previous, and is gone when retired."""

    next = "next"
    active = "active"
    previous = "previous"
    retired = "retired"


class SigningKey(SQLModel, table=True):
    """An asymmetric key the token service signs with; the private half is sealed (AES-GCM) at rest."""

    __tablename__ = "signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    algorithm: str = Field(default="EdDSA", max_length=16)
    public_pem: str = Field(sa_column=Column(Text, nullable=False))
    private_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    status: KeyStatus = enum_field(KeyStatus, default=KeyStatus.active, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    activates_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime(), nullable=True, description="a next key signs from then on"
    )
    verify_until: datetime | None = Field(
        default=None, sa_type=UTCDateTime(), nullable=True, description="a previous key verifies until then"
    )
    retired_at: datetime | None = Field(default=None, sa_type=UTCDateTime(), nullable=True)


class CredentialSecret(SQLModel, table=True):
    """The sealed secret of an externally issued credential that is needed to revoke it (Slack).

    Kept apart from the ledger so the ledger never holds a secret; deleted once the credential is
    revoked (crypto-shredding).
    """

    __tablename__ = "credential_secret"

    credential_id: int = Field(primary_key=True, foreign_key="credential.id")
    sealed: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
