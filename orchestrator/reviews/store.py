"""The review rows' life: queue one, claim it for a run, record a failure. Database only.

- `queue_review` (in the triggering event's transaction) moves the app to `in_review` when the
  state machine allows it, writes a `queued` Review, and has its task published after commit. A
  trigger while the app already has a queued review joins that review instead of adding another.
- `claim` is a compare-and-set: only a `queued` review, a `failed` one with a retry due, or a
  `running` one whose lease ran out (its worker died) becomes `running` under a new lease, with
  its attempt counted. A review that is done is never run again; one that keeps killing its worker
  is failed after REVIEW_MAX_ATTEMPTS.
- `record_failure` marks the attempt `failed` with the reason; a timeout or a network error with
  attempts left sets `retry_at` and publishes the task again, otherwise the review stays failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, or_, update
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import lifecycle
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import POLICY_ACTOR, Action, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.clock import utcnow
from orchestrator.config import Settings
from orchestrator.errors import InvalidTransition
from orchestrator.logs import get_logger
from orchestrator.reviews.models import Review, ReviewStatus
from orchestrator.reviews.publish import publish_after_commit
from orchestrator.timers import service as deadlines

log = get_logger(__name__)

# Apps on their way out are not reviewed any more.
NOT_REVIEWED = frozenset({Stage.sunsetting, Stage.retired})
_SHA = re.compile(r"^[0-9a-f]{40}$")
_BRANCH = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._/-]{0,200}$")
_MAX_ERROR = 2000


def safe_ref(value: Any) -> str | None:
    """A commit sha or branch name that is safe to hand to git (never an option), else None."""
    if not isinstance(value, str):
        return None
    ref = value.strip()
    if ref.startswith("refs/heads/"):
        ref = ref[len("refs/heads/") :]
    if _SHA.match(ref) or (_BRANCH.match(ref) and ".." not in ref):
        return ref
    return None


def queue_review(
    session: Session, app: MicroApp, *, trigger: str, event_id: str | None, ref: str | None, policy: Policy
) -> int | None:
    """Queue a review of `app` (see the module docstring); its id, or None when the app is no longer reviewed.

    Only a newly queued review is audited (with the stage change it may bring); a trigger that
    joins the queued review changes no state, and its event row and the review's
    `trigger_event_id` record it.
    """
    if app.stage in NOT_REVIEWED:
        return None
    joined_id = join_queued(session, app.id, app.stage, trigger=trigger, event_id=event_id, ref=ref)
    if joined_id is not None:
        return joined_id
    return queue_new_review(session, app, trigger=trigger, event_id=event_id, ref=ref, policy=policy)


def request_review(
    session: Session,
    app: MicroApp,
    *,
    actor: str,
    policy: Policy,
    trigger: str,
    proposed_manifest: dict[str, Any] | None = None,
) -> int:
    """Queue a review of `app` on a person's request (API, CLI), audited under their name; its id.

    With `proposed_manifest` (a manifest sent through the API) the review reads that manifest in place
    of the repository's `microapp.yaml`. InvalidTransition when the app is no longer reviewed.
    """
    review_id = queue_review(session, app, trigger=trigger, event_id=None, ref=None, policy=policy)
    if review_id is None:
        raise InvalidTransition(
            f"an app in stage {app.stage.value} is not reviewed any more",
            stage=app.stage.value,
            action="review",
            allowed=[a.value for a in lifecycle.allowed_actions(app.stage)],
        )
    review = session.get(Review, review_id)
    assert review is not None
    if proposed_manifest is not None:
        review.proposed_manifest = proposed_manifest
        session.add(review)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.review_requested,
        app_id=app.id,
        reason=trigger,
        data={"review_id": review_id, "manifest": proposed_manifest is not None},
    )
    session.flush()
    return review_id


def queue_new_review(
    session: Session, app: MicroApp, *, trigger: str, event_id: str | None, ref: str | None, policy: Policy
) -> int:
    """The part of `queue_review` after `join_queued` found nothing to join: queue (or join, under a
    lock) the review, move the app to `in_review` if it may, audit a new review; its id."""
    moves = _moves(app.stage)
    now = utcnow()
    review = session.exec(
        select(Review)
        .where(Review.app_id == app.id, Review.status == ReviewStatus.queued)
        .order_by(col(Review.id))
        .with_for_update()  # a concurrent claim must not start the run with the older ref
    ).first()
    joined = review is not None
    if review is None:
        review = Review(app_id=app.id, trigger=trigger, data_class=app.data_class.value, published_at=now)
    # The newest trigger wins: a later push (or "the default branch now") supersedes an older commit.
    review.ref, review.trigger, review.trigger_event_id = ref, trigger, event_id
    session.add(review)
    session.flush()
    assert review.id is not None
    if moves:
        catalog.apply_action(
            session,
            app,
            Action.submit_for_review,
            actor=POLICY_ACTOR,
            policy=policy,
            reason=f"automated review after {trigger}",
            data={"review_id": review.id},
        )
        deadlines.reschedule_app(session, app, policy, now=now)
    if not joined:
        audit.record(
            session,
            actor=POLICY_ACTOR,
            action=AuditAction.review_queued,
            app_id=app.id,
            reason=trigger,
            data={"review_id": review.id, "ref": ref, "event_id": event_id},
        )
        publish_after_commit(session, review.id)
    return review.id


def stage_of(session: Session, app_id: str) -> Stage | None:
    """The app's stage, or None when it is not catalogued (one column read, for the hot path)."""
    return session.execute(_STAGE_OF, {"stage_app_id": app_id}).scalar_one_or_none()


def _moves(stage: Stage) -> bool:
    """Whether queueing a review moves an app at `stage` to `in_review`."""
    return stage is not Stage.in_review and Action.submit_for_review in lifecycle.allowed_actions(stage)


def join_queued(
    session: Session, app_id: str, stage: Stage, *, trigger: str, event_id: str | None, ref: str | None
) -> int | None:
    """Point the app's queued review at the newest trigger, in one statement; its id, or None.

    None when there is no queued review, or when queueing one would move the app (`queue_review`
    does that). The UPDATE locks the row itself. On PostgreSQL a concurrent claim that moved it to
    `running` first makes the re-checked `status = queued` fail, and the caller takes the full path.
    """
    if stage in NOT_REVIEWED or _moves(stage):
        return None
    params = {"queued_app_id": app_id, "new_trigger": trigger, "new_event_id": event_id, "new_ref": ref}
    row = session.connection().execute(_JOIN_QUEUED, params).first()
    if row is None:
        return None
    review = session.identity_map.get(session.identity_key(Review, row[0]))
    if review is not None:  # keep a review this session already holds in step with the row
        session.expire(review, ["ref", "trigger", "trigger_event_id"])
    return int(row[0])


def stages_of(session: Session, app_ids: list[str]) -> dict[str, Stage]:
    """The stage of each catalogued app among `app_ids`, in one read (the batch form of `stage_of`)."""
    if not app_ids:
        return {}
    rows = session.execute(select(MicroApp.id, MicroApp.stage).where(col(MicroApp.id).in_(app_ids)))
    return {row[0]: row[1] for row in rows}


@dataclass(frozen=True)
class Trigger:
    """What starts or joins a review: the event type, its id, the ref to look at."""

    trigger: str
    event_id: str | None
    ref: str | None


def join_queued_many(session: Session, triggers: dict[str, tuple[Stage, Trigger]]) -> set[str]:
    """`join_queued` for many apps at once (app id → its stage and newest trigger); the apps joined.

    Three statements whatever the number of apps: the queued reviews are read and locked (in app
    order, so that two workers doing this never wait for each other in a cycle), then updated with
    one executemany. An app left out (no queued review, or queueing would move it) takes the full path.
    """
    joinable = sorted(app_id for app_id, (stage, _) in triggers.items() if not (stage in NOT_REVIEWED or _moves(stage)))
    if not joinable:
        return set()
    rows = session.execute(
        select(_REVIEW.c.app_id, _REVIEW.c.id)
        .where(_REVIEW.c.app_id.in_(joinable), _REVIEW.c.status == ReviewStatus.queued)
        .order_by(_REVIEW.c.app_id, _REVIEW.c.id)
        .with_for_update()
    ).all()
    first: dict[str, int] = {}
    for app_id, review_id in rows:
        first.setdefault(app_id, review_id)  # the oldest queued review, as join_queued picks it
    if not first:
        return set()
    params = [
        {"joined_id": review_id, "new_ref": t.ref, "new_trigger": t.trigger, "new_event_id": t.event_id}
        for app_id, review_id in first.items()
        for t in (triggers[app_id][1],)
    ]
    session.connection().execute(_JOIN_LOCKED, params)
    for review_id in first.values():
        review = session.identity_map.get(session.identity_key(Review, review_id))
        if review is not None:  # keep a review this session already holds in step with the row
            session.expire(review, ["ref", "trigger", "trigger_event_id"])
    return set(first)


_REVIEW: Table = Review.__table__  # type: ignore[attr-defined]
_STAGE_OF = select(MicroApp.stage).where(MicroApp.id == bindparam("stage_app_id"))
_JOIN_QUEUED = (
    update(_REVIEW)
    .where(
        _REVIEW.c.id
        == select(_REVIEW.c.id)
        .where(_REVIEW.c.app_id == bindparam("queued_app_id"), _REVIEW.c.status == ReviewStatus.queued)
        .order_by(_REVIEW.c.id)
        .limit(1)
        .scalar_subquery(),
        _REVIEW.c.status == ReviewStatus.queued,
    )
    .values(ref=bindparam("new_ref"), trigger=bindparam("new_trigger"), trigger_event_id=bindparam("new_event_id"))
    .returning(_REVIEW.c.id)
)
# The rows are locked and known to be queued (join_queued_many read them FOR UPDATE in this transaction).
_JOIN_LOCKED = (
    update(_REVIEW)
    .where(_REVIEW.c.id == bindparam("joined_id"))
    .values(ref=bindparam("new_ref"), trigger=bindparam("new_trigger"), trigger_event_id=bindparam("new_event_id"))
)


@dataclass(frozen=True)
class Job:
    """What one run of a review needs, read when it was claimed."""

    review_id: int
    attempt: int
    app_id: str
    repo_url: str | None
    ref: str | None
    data_class: str
    manifest: dict[str, Any]  # the catalog's, when the review was claimed
    proposed_manifest: dict[str, Any] | None = None  # sent through the API: reviewed instead of the repository's
    approved_before: bool = False  # the catalog's manifest was approved once: reaching further needs an approval


def lease_seconds(settings: Settings, policy: Policy) -> float:
    """How long a run may hold its review before another worker may take it over."""
    return settings.review_fetch_timeout_seconds + policy.review_limits.timeout_seconds + 60


class Busy:
    """Another review of the same app is running: this one waits its turn (reviews of an app run in order)."""


BUSY = Busy()


def claim(session: Session, review_id: int, *, settings: Settings, policy: Policy) -> Job | Busy | None:
    """Take the review for one run (compare-and-set); None when there is nothing to run, BUSY to wait."""
    now = utcnow()
    app_id = session.exec(select(Review.app_id).where(Review.id == review_id)).first()
    running = session.exec(
        select(Review.id).where(
            Review.app_id == app_id,
            col(Review.id) != review_id,
            Review.status == ReviewStatus.running,
            col(Review.lease_until) >= now,
        )
    ).first()
    if running is not None:
        # Best effort (two claims at the same instant may both pass): an app's reviews finish in order,
        # so "the previous review" and the lifecycle outcome follow the commits.
        return BUSY
    runnable = or_(
        col(Review.status) == ReviewStatus.queued,
        and_(col(Review.status) == ReviewStatus.failed, col(Review.retry_at).is_not(None)),
        and_(col(Review.status) == ReviewStatus.running, col(Review.lease_until) < now),
    )
    won = session.exec(
        update(Review)
        .where(col(Review.id) == review_id, runnable)
        .values(
            status=ReviewStatus.running,
            attempts=col(Review.attempts) + 1,
            started_at=now,
            lease_until=now + timedelta(seconds=lease_seconds(settings, policy)),
            retry_at=None,
            error=None,
        )
    ).rowcount
    if not won:
        return None
    review = session.get(Review, review_id)
    assert review is not None
    session.refresh(review)
    app = session.get(MicroApp, review.app_id)
    if review.attempts > settings.review_max_attempts:
        # Only runs that died without recording an outcome get here (SIGKILL, OOM, lost worker).
        _fail(
            session,
            review,
            f"gave up after {review.attempts - 1} attempts that ended without an outcome (worker lost?)",
            now=now,
        )
        return None
    if app is None or app.stage in NOT_REVIEWED:
        _fail(session, review, "the app is no longer catalogued" if app is None else f"the app is {app.stage}", now=now)
        return None
    return Job(
        review_id=review_id,
        attempt=review.attempts,
        app_id=app.id,
        repo_url=app.repo_url,
        ref=review.ref or safe_ref(app.default_branch),
        data_class=review.data_class or app.data_class.value,
        manifest=catalog.manifest_of(app),
        proposed_manifest=dict(review.proposed_manifest) if review.proposed_manifest else None,
        approved_before=app.approved_at is not None,
    )


def _fail(session: Session, review: Review, error: str, *, now: Any, retry: bool = False) -> None:
    review.status = ReviewStatus.failed
    review.error = error[:_MAX_ERROR]
    review.finished_at = now
    review.lease_until = None
    review.retry_at = now if retry else None
    if retry:
        review.published_at = now
    session.add(review)
    audit.record(
        session,
        actor=POLICY_ACTOR,
        action=AuditAction.review_failed,
        app_id=review.app_id,
        reason=review.error,
        data={"review_id": review.id, "attempt": review.attempts, "retrying": retry},
    )
    if retry:
        assert review.id is not None
        publish_after_commit(session, review.id)


def record_failure(session: Session, job: Job, error: str, *, retryable: bool, settings: Settings) -> str:
    """Mark this run's review failed; a retryable error with attempts left is retried. Returns the outcome."""
    review = session.exec(select(Review).where(Review.id == job.review_id).with_for_update()).one()
    if review.status is not ReviewStatus.running or review.attempts != job.attempt:
        return "superseded"  # another run took the review over after our lease ran out
    retry = retryable and review.attempts < settings.review_max_attempts
    suffix = f" (attempt {review.attempts} of {settings.review_max_attempts}{'; retrying' if retry else ''})"
    _fail(session, review, error + suffix, now=utcnow(), retry=retry)
    log.warning("review failed", review_id=job.review_id, error=review.error, retrying=retry)
    return "retrying" if retry else "failed"
