"""The `idp_user` table: a person as the identity provider provisioned them over SCIM."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import new_id, timestamp_field


class IdpUser(SQLModel, table=True):
    """One SCIM User: its id is ours (the IdP stores it), `external_id` is the IdP's own."""

    __tablename__ = "idp_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=64)
    external_id: str | None = Field(default=None, index=True, max_length=200)
    # Lower-cased: SCIM says userName is case-insensitive (RFC 7643 §4.1.1).
    user_name: str = Field(unique=True, index=True, max_length=320)
    # The person's email in the catalog (`person.email`): the primary email, else the userName.
    email: str = Field(index=True, max_length=320)
    display_name: str = Field(default="", max_length=200)
    active: bool = True
    # The enterprise extension's manager.value: the SCIM id (or externalId) of another user.
    manager_ref: str | None = Field(default=None, max_length=200)
    # How many times the user went from active to inactive: part of the owner.left dedup key.
    deactivations: int = 0
    # The last resource the IdP sent, as SCIM JSON (what GET returns besides id/meta).
    resource: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    deactivated_at: datetime | None = timestamp_field()
