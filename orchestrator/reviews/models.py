"""Tables of automated reviews: one `review` row per run, one `review_finding` row per finding.

A review row is also its own outbox record: `queued` with a `published_at` lease until a worker
claims it, `running` under a `lease_until`, then `done` (with a verdict) or `failed` (with the
reason; `retry_at` set while one more attempt is due). A finding row holds a fingerprint and a
redacted preview — never the secret — and carries the first review that saw it, so its resolution
(absent from a later review of the same app) records the time it took to remediate.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text
from sqlmodel import Field, SQLModel

from orchestrator.clock import UTCDateTime, utcnow
from orchestrator.db import enum_field


class ReviewStatus(StrEnum):
    """Where one review run is."""

    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"


class Verdict(StrEnum):
    """The outcome of a done review (see `orchestrator.reviews.checks.verdict`)."""

    passed = "pass"
    needs_approval = "needs_approval"
    fail = "fail"
    escalate = "escalate"


def _ts(*, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime(), nullable=True, index=index)


class Review(SQLModel, table=True):
    """One automated review of an app's source at a commit."""

    __tablename__ = "review"
    __table_args__ = (Index("ix_review_status_published", "status", "published_at"),)

    id: int | None = Field(default=None, primary_key=True)
    app_id: str = Field(index=True, max_length=64)
    commit: str | None = Field(default=None, max_length=64, description="the commit reviewed (resolved at fetch)")
    ref: str | None = Field(default=None, max_length=255, description="what was asked for: a commit or a branch")
    trigger: str = Field(max_length=64, description="app.created, app.updated, review.due, …")
    trigger_event_id: str | None = Field(default=None, index=True, max_length=32)
    status: ReviewStatus = enum_field(ReviewStatus, default=ReviewStatus.queued, index=True)
    verdict: Verdict | None = enum_field(Verdict, nullable=True)
    data_class: str | None = Field(default=None, max_length=32)
    source: str | None = Field(default=None, max_length=32, description="git, github-tarball or manifest-only")
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    stats: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    skipped: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # A manifest sent through the API (PUT /apps/{id}/manifest): reviewed in place of the repository's.
    proposed_manifest: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The valid manifest the review read: what the catalog adopts when the app is approved on this review.
    manifest: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    published_at: datetime | None = _ts()
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    lease_until: datetime | None = _ts()
    retry_at: datetime | None = _ts()


class ReviewFinding(SQLModel, table=True):
    """One finding of one review; identified across reviews by (check, rule, fingerprint)."""

    __tablename__ = "review_finding"
    __table_args__ = (Index("ix_review_finding_app_identity", "app_id", "check", "rule", "fingerprint"),)

    id: int | None = Field(default=None, primary_key=True)
    review_id: int = Field(foreign_key="review.id", index=True)
    app_id: str = Field(index=True, max_length=64)
    check: str = Field(max_length=32)
    rule: str = Field(max_length=100)
    file: str | None = Field(default=None, max_length=1000)
    line: int | None = None
    severity: str = Field(max_length=16)
    fingerprint: str = Field(max_length=64)
    preview: str = Field(default="", max_length=500)
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    allowed: bool = False
    allow_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    first_seen_review_id: int | None = Field(default=None, index=True)
    first_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime(), nullable=False)
    resolved_at: datetime | None = _ts()
    resolved_by_review_id: int | None = None
    time_to_remediate_seconds: float | None = None
