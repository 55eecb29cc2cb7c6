"""Storing a finished review: the Review row, its findings, and what the previous review left open.

A finding is the same finding across reviews of one app when its (check, rule, fingerprint) match:
it keeps the review and time it was first seen. A finding of the app's previous done review that is
absent from this one is resolved: `resolved_at`, the review that resolved it, and the time to
remediate (from first seen to now), on every row of that finding's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from orchestrator.clock import as_utc, utcnow
from orchestrator.reviews.checks.findings import Finding, ReviewResult
from orchestrator.reviews.models import Review, ReviewFinding, ReviewStatus, Verdict
from orchestrator.reviews.store import Job

Key = tuple[str, str, str]
# Finding.extra keys worth keeping for a human (all hold names, versions, ids, counts — no values).
_DETAIL_KEYS = (
    "family",
    "detector",
    "kind",
    "package",
    "ecosystem",
    "version",
    "advisory",
    "advisory_severity",
    "summary",
    "fixed",
    "blocked_versions",
    "subject",
    "count",
    "limit",
    "endpoints",
    "connectors",
    "connector",
    "locations",
    "host",
    "provider",
    "llm_egress",
    "errors",
)
_MAX_PREVIEW = 500


@dataclass(frozen=True)
class Stored:
    """What storing a review changed."""

    review: Review
    new: int
    carried: int
    resolved: int


def key_of(finding: Finding | ReviewFinding) -> Key:
    """The identity of a finding across reviews of one app."""
    return (finding.check, finding.rule, finding.fingerprint)


def _details(finding: Finding) -> dict[str, Any]:
    return {k: finding.extra[k] for k in _DETAIL_KEYS if k in finding.extra}


def previous_done(session: Session, app_id: str, before_id: int) -> Review | None:
    """The app's most recent done review other than `before_id`."""
    return session.exec(
        select(Review)
        .where(Review.app_id == app_id, Review.status == ReviewStatus.done, col(Review.id) != before_id)
        .order_by(col(Review.finished_at).desc(), col(Review.id).desc())
        .limit(1)
    ).first()


def store_result(
    session: Session,
    job: Job,
    result: ReviewResult,
    *,
    commit: str | None,
    source: str,
    skipped: list[dict[str, Any]],
    manifest: dict[str, Any] | None = None,
) -> Stored | None:
    """Record the run's result (compare-and-set on this run's claim); None if another run took over.

    `manifest` is the valid manifest the review read (None when missing or invalid): the catalog adopts
    it when the app is approved on this review.
    """
    now = utcnow()
    review = session.exec(select(Review).where(Review.id == job.review_id).with_for_update()).one()
    if review.status is not ReviewStatus.running or review.attempts != job.attempt:
        return None
    review.status, review.verdict = ReviewStatus.done, Verdict(result.verdict)
    review.commit, review.source = commit, source
    review.finished_at, review.lease_until, review.retry_at, review.error = now, None, None, None
    review.stats = dict(result.stats)
    if result.manifest is not None:
        # What the review read, so the invariants can tell whether the catalog adopted it (orchestrator.invariants).
        review.stats["manifest_summary"] = {
            "scopes": sorted(set(result.manifest.get("scopes") or [])),
            "connectors": sorted(set(result.manifest.get("connectors") or [])),
        }
    review.skipped = list(skipped)[:1000]
    review.manifest = manifest
    session.add(review)

    previous = previous_done(session, job.app_id, job.review_id)
    open_before: dict[Key, ReviewFinding] = {}
    if previous is not None:
        rows = session.exec(
            select(ReviewFinding).where(
                ReviewFinding.review_id == previous.id, col(ReviewFinding.resolved_at).is_(None)
            )
        ).all()
        open_before = {key_of(r): r for r in rows}
    carried = 0
    for finding in result.findings:
        earlier = open_before.get(key_of(finding))
        carried += earlier is not None
        session.add(
            ReviewFinding(
                review_id=job.review_id,
                app_id=job.app_id,
                check=finding.check,
                rule=finding.rule,
                file=(finding.file or None) and finding.file[:1000],
                line=finding.line,
                severity=finding.severity,
                fingerprint=finding.fingerprint,
                preview=finding.preview[:_MAX_PREVIEW],
                message=finding.message,
                allowed=finding.allowed,
                allow_reason=finding.allow_reason,
                details=_details(finding),
                first_seen_review_id=earlier.first_seen_review_id if earlier else job.review_id,
                first_seen_at=earlier.first_seen_at if earlier else now,
            )
        )
    present = {key_of(f) for f in result.findings}
    resolved = [row for key, row in open_before.items() if key not in present]
    for row in resolved:
        _resolve(session, row, review_id=job.review_id, now=now)
    session.flush()
    return Stored(review=review, new=len(result.findings) - carried, carried=carried, resolved=len(resolved))


def _resolve(session: Session, row: ReviewFinding, *, review_id: int, now: Any) -> None:
    """Resolve one finding on every row of its history (same identity, same first sighting)."""
    seconds = max(0.0, (now - as_utc(row.first_seen_at)).total_seconds())
    session.execute(
        update(ReviewFinding)
        .where(
            col(ReviewFinding.app_id) == row.app_id,
            col(ReviewFinding.check) == row.check,
            col(ReviewFinding.rule) == row.rule,
            col(ReviewFinding.fingerprint) == row.fingerprint,
            col(ReviewFinding.first_seen_review_id) == row.first_seen_review_id,
            col(ReviewFinding.resolved_at).is_(None),
        )
        .values(resolved_at=now, resolved_by_review_id=review_id, time_to_remediate_seconds=round(seconds, 3))
    )


def summary(result: ReviewResult, *, review_id: int, commit: str | None, top: int = 10) -> dict[str, Any]:
    """The review as attached to approval requests and events: verdict, counts, the top findings (redacted)."""
    active = result.active_findings()
    counts: dict[str, int] = {}
    for f in active:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    return {
        "review_id": review_id,
        "verdict": result.verdict,
        "commit": commit,
        "counts": counts,
        "total": len(active),
        "findings": [
            {
                "check": f.check,
                "rule": f.rule,
                "file": f.file,
                "line": f.line,
                "severity": f.severity,
                "preview": f.preview,
                "message": f.message,
            }
            for f in active[:top]
        ],
    }
