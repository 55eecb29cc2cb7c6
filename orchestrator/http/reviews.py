"""Review routes: an app's reviews, one review with its findings, and a review requested by hand.

`GET /api/v1/apps/{app_id}/reviews` lists the reviews newest first (status, verdict, commit, the
reason of a failed one); `GET /api/v1/reviews/{review_id}` adds the findings — fingerprints and
redacted previews only, never a secret — with their first sighting and resolution. Visibility is
the app's: a maker sees only reviews of their own apps (anything else is a 404).
`POST /api/v1/apps/{app_id}/reviews` queues a review now (or joins the one already queued), for anyone
who can see the app; a production app goes to `in_review` as on a push.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlmodel import col, select

from orchestrator.auth.service import can_see, principal
from orchestrator.catalog.models import MicroApp
from orchestrator.db import session_scope
from orchestrator.errors import NotFound
from orchestrator.http.deps import CurrentToken, PolicyDep, ReadSession, RowId, bind_path_ids
from orchestrator.http.schemas import ERROR_RESPONSES, AppRead, ReviewRequested
from orchestrator.logs import bind, get_logger
from orchestrator.reviews import store
from orchestrator.reviews.models import Review, ReviewFinding

log = get_logger(__name__)
router = APIRouter(prefix="/api/v1", tags=["reviews"], dependencies=[Depends(bind_path_ids)], responses=ERROR_RESPONSES)


class ReviewRead(BaseModel):
    """One review run."""

    id: int
    app_id: str
    status: str
    verdict: str | None
    commit: str | None
    trigger: str
    source: str | None
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stats: dict[str, Any]

    @classmethod
    def of(cls, row: Review) -> ReviewRead:
        """From the table row."""
        return cls(**row.model_dump(include=set(cls.model_fields)))


class FindingRead(BaseModel):
    """One finding, as stored: never the secret, only its fingerprint and a redacted preview."""

    check: str
    rule: str
    file: str | None
    line: int | None
    severity: str
    fingerprint: str
    preview: str
    message: str
    allowed: bool
    allow_reason: str | None
    details: dict[str, Any]
    first_seen_review_id: int | None
    first_seen_at: datetime
    resolved_at: datetime | None
    time_to_remediate_seconds: float | None


class ReviewDetail(ReviewRead):
    """A review with its findings and the files it skipped."""

    findings: list[FindingRead]
    skipped: list[dict[str, Any]]


def _visible(session: ReadSession, token: CurrentToken, app_id: str) -> MicroApp:
    app = session.get(MicroApp, app_id)
    if app is None or not can_see(token, app):
        raise NotFound(f"no app with id {app_id!r}")
    return app


@router.get("/apps/{app_id}/reviews", response_model=list[ReviewRead])
def list_reviews(
    app_id: str, session: ReadSession, token: CurrentToken, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[ReviewRead]:
    """The app's reviews, newest first."""
    _visible(session, token, app_id)
    rows = session.exec(
        select(Review).where(Review.app_id == app_id).order_by(col(Review.id).desc()).limit(limit)
    ).all()
    return [ReviewRead.of(r) for r in rows]


@router.post("/apps/{app_id}/reviews", response_model=ReviewRequested, status_code=202)
def request_review(app_id: str, token: CurrentToken, policy: PolicyDep) -> ReviewRequested:
    """Review the app now (its repository's default branch, or its catalogued manifest): no push needed."""
    actor = principal(token)
    with session_scope() as session:
        app = session.get(MicroApp, app_id, with_for_update=True)
        if app is None or not can_see(token, app):
            raise NotFound(f"no app with id {app_id!r}")
        review_id = store.request_review(session, app, actor=actor, policy=policy, trigger="review.requested")
        result = ReviewRequested(app=AppRead.of(app), review_id=review_id)
    bind(review_id=review_id)
    log.info("review requested", stage=result.app.stage)
    return result


@router.get("/reviews/{review_id}", response_model=ReviewDetail)
def show_review(review_id: RowId, session: ReadSession, token: CurrentToken) -> ReviewDetail:
    """One review with its findings, most severe first."""
    row = session.get(Review, review_id)
    if row is None:
        raise NotFound(f"no review with id {review_id}")
    _visible(session, token, row.app_id)
    findings = session.exec(
        select(ReviewFinding).where(ReviewFinding.review_id == review_id).order_by(col(ReviewFinding.id))
    ).all()
    return ReviewDetail(
        **ReviewRead.of(row).model_dump(),
        findings=[FindingRead(**f.model_dump(include=set(FindingRead.model_fields))) for f in findings],
        skipped=row.skipped,
    )
