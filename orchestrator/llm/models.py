"""The usage record of each connector call: who, which model, how many tokens, what was redacted — never the prompt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field


class Outcome(StrEnum):
    """How a connector call ended."""

    ok = "ok"  # the provider answered 2xx
    blocked = "blocked"  # refused by policy (redaction `block`, model not allowed)
    limited = "limited"  # refused by the connector's own limits
    upstream_error = "upstream_error"  # the provider answered an error or could not be reached
    cancelled = "cancelled"  # the client went away mid-stream


class LlmUsage(SQLModel, table=True):
    """One call through the LLM connector."""

    __tablename__ = "llm_usage"
    __table_args__ = (Index("ix_llm_usage_app_at", "app_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    app_id: str = Field(max_length=64)
    provider: str = Field(max_length=32)
    endpoint: str = Field(max_length=64, description="chat, embeddings, messages, count_tokens")
    model: str = Field(default="", max_length=200)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    status_code: int = 0
    streamed: bool = False
    outcome: Outcome = enum_field(Outcome, default=Outcome.ok, index=True)
    redactions: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
