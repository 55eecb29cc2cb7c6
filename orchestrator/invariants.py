"""The lifecycle invariants: queries that must find nothing in a healthy catalog, one function per rule.

Domain-neutral: this module may read every domain's tables and services, and no domain imports it
(an import-linter contract holds that). `orchestrator doctor`, `GET /api/v1/health/invariants`, the
scheduler's metrics job and the model-based test (tests/test_model.py) all run `check_all()`.

Each rule returns `Violation`s naming the app (when there is one), the rule, what is wrong and the
command that repairs it. Rules read only; none of them writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from orchestrator import redis_snapshots
from orchestrator.approvals.models import ApprovalKind, ApprovalRequest, ApprovalStatus
from orchestrator.audit import service as audit
from orchestrator.audit.models import AuditEntry
from orchestrator.auth.models import ApiToken
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, Stage
from orchestrator.catalog.models import MicroApp, Person
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.credentials.tokens.builtin import SERVICE
from orchestrator.credentials.tokens.exchange import effective_scopes
from orchestrator.events.models import Event, EventStatus
from orchestrator.events.registry import registration_for
from orchestrator.events.types import EventType
from orchestrator.reviews.models import Review, ReviewStatus, Verdict
from orchestrator.timers import plan as timer_plan
from orchestrator.timers.models import Deadline, DeadlineKind, DeadlineStatus

# Where an owner who left may still appear as owner: the hand-over chain (waiting for a new owner,
# or on the way out).
HANDOVER_STAGES = frozenset({Stage.orphaned, Stage.suspended, Stage.sunsetting, Stage.retired})
# Kinds whose deadlines belong to retired apps (their archives' retention).
_RETIRED_KINDS = frozenset({DeadlineKind.retention_purge})
# The review statistic (written by orchestrator.reviews.results) that names the manifest a review read.
MANIFEST_SUMMARY_KEY = "manifest_summary"


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which rule, which app, what is wrong and how to repair it."""

    rule: str
    app_id: str | None
    detail: str
    fix: str

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for JSON output."""
        return asdict(self)


@dataclass(frozen=True)
class Context:
    """What every rule may need besides the session: the time and the policy."""

    now: datetime
    policy: Policy


Rule = Callable[[Session, Context], list[Violation]]


def _apps(session: Session, stages: Iterable[Stage] | None = None) -> list[MicroApp]:
    query = select(MicroApp)
    if stages is not None:
        query = query.where(col(MicroApp.stage).in_(list(stages)))
    return list(session.exec(query.order_by(col(MicroApp.id))).all())


def _live(now: datetime) -> Any:
    return (
        Credential.status == CredentialStatus.live,
        or_(col(Credential.expires_at).is_(None), col(Credential.expires_at) > now),
    )


def inactive_app_holds_no_credential(session: Session, ctx: Context) -> list[Violation]:
    """An app outside the active stages holds no live credential in the ledger, once it could have let go.

    A retired or suspended app holds none. A sunsetting app holds none once its sunset has passed the
    revoke step (until then the run is what revokes them). An expiring app is frozen until extended or
    expired, and an orphaned one keeps running through its grace period: both may still hold theirs.
    """
    from orchestrator.sunset.models import SunsetRun, SunsetStep

    rule = "inactive-app-holds-no-credential"
    checked = [Stage.retired, Stage.suspended, Stage.sunsetting]
    live = session.exec(
        select(Credential, MicroApp.stage)
        .join(MicroApp, col(MicroApp.id) == col(Credential.app_id))
        .where(col(MicroApp.stage).in_(checked), *_live(ctx.now))
        .order_by(col(Credential.id))
    ).all()
    out: list[Violation] = []
    for credential, stage in live:
        if stage is Stage.sunsetting:
            run = session.exec(select(SunsetRun).where(SunsetRun.app_id == credential.app_id)).first()
            if run is None or run.step in (SunsetStep.freeze, SunsetStep.revoke):
                continue  # the sunset has yet to revoke it (a missing run is the sunset's own problem)
        out.append(
            Violation(
                rule,
                credential.app_id,
                f"credential #{credential.id} ({credential.provider}) is live in stage {stage}",
                f"orchestrator credentials revoke {credential.id}",
            )
        )
    return out


def inactive_app_has_no_pending_request(session: Session, ctx: Context) -> list[Violation]:
    """An app outside the active stages has no pending approval request (an expiring one may await its extension)."""
    rule = "inactive-app-has-no-pending-request"
    inactive = [s for s in Stage if s not in ACTIVE_STAGES]
    pending = session.exec(
        select(ApprovalRequest, MicroApp.stage)
        .join(MicroApp, col(MicroApp.id) == col(ApprovalRequest.app_id))
        .where(col(MicroApp.stage).in_(inactive), ApprovalRequest.status == ApprovalStatus.pending)
        .order_by(col(ApprovalRequest.id))
    ).all()
    return [
        Violation(
            rule,
            request.app_id,
            f"approval request #{request.id} ({request.kind}) is pending in stage {stage}",
            f"orchestrator approvals reject {request.id} --reason 'the app left the active stages'",
        )
        for request, stage in pending
        if not (stage is Stage.expiring and request.kind == ApprovalKind.extension)
    ]


def events_handled(session: Session, ctx: Context) -> list[Violation]:
    """Every emitted event type has a handler, and no event is parked or failed."""
    rule = "events-handled"
    out: list[Violation] = []
    for member in EventType:
        if registration_for(member.value) is None:
            out.append(Violation(rule, None, f"event type {member.value} has no handler", "add it to wiring.py"))
    types = session.exec(select(Event.type).distinct()).all()
    known = {m.value for m in EventType}
    for event_type in sorted(types):
        if event_type not in known and registration_for(event_type) is None:
            out.append(Violation(rule, None, f"emitted event type {event_type} has no handler", "add it to wiring.py"))
    stuck = session.exec(
        select(Event)
        .where(col(Event.status).in_([EventStatus.parked, EventStatus.failed]))
        .order_by(col(Event.received_at))
        .limit(200)
    ).all()
    for event in stuck:
        why = (event.last_error or "").splitlines()[0][:200] if event.last_error else "no error recorded"
        out.append(
            Violation(
                rule,
                event.app_id,
                f"event {event.id} ({event.type}) is {event.status}: {why}",
                f"orchestrator events retry {event.id}",
            )
        )
    return out


def manifest_summary(scopes: Iterable[str], connectors: Iterable[str]) -> dict[str, list[str]]:
    """The part of a manifest whose approval matters, in a comparable form."""
    return {"scopes": sorted(set(scopes)), "connectors": sorted(set(connectors))}


def catalog_manifest_approved(session: Session, ctx: Context) -> list[Violation]:
    """A production app's catalog manifest is the one its last approved review read.

    A review records what it read (`stats["manifest_summary"]`: scopes and connectors); reviews
    written before that statistic existed are skipped, as far as the data allows.
    """
    rule = "catalog-manifest-approved"
    out: list[Violation] = []
    for app in _apps(session, [Stage.production]):
        review = session.exec(
            select(Review)
            .where(
                Review.app_id == app.id,
                Review.status == ReviewStatus.done,
                col(Review.verdict).in_([Verdict.passed, Verdict.needs_approval]),
            )
            .order_by(col(Review.finished_at).desc(), col(Review.id).desc())
            .limit(1)
        ).first()
        if review is None or MANIFEST_SUMMARY_KEY not in (review.stats or {}):
            continue
        reviewed = review.stats[MANIFEST_SUMMARY_KEY]
        held = manifest_summary(app.requested_scopes, app.connectors)
        if manifest_summary(reviewed.get("scopes") or [], reviewed.get("connectors") or []) != held:
            out.append(
                Violation(
                    rule,
                    app.id,
                    f"review #{review.id} approved {reviewed} but the catalog holds {held}",
                    f"adopt the approved manifest of {app.id}, or request a review of its current one",
                )
            )
    return out


def production_app_holds_service_credential(session: Session, ctx: Context) -> list[Violation]:
    """A production app whose manifest asks for scopes the policy grants holds a live service credential."""
    rule = "production-app-holds-service-credential"
    out: list[Violation] = []
    for app in _apps(session, [Stage.production]):
        if not effective_scopes(app, None, ctx.policy):
            continue
        held = session.exec(
            select(func.count())
            .select_from(Credential)
            .where(Credential.app_id == app.id, Credential.provider == SERVICE, *_live(ctx.now))
        ).one()
        if not held:
            out.append(
                Violation(
                    rule,
                    app.id,
                    "in production with a valid manifest but no live service credential",
                    f"request a review of {app.id}: its approval issues the service credential",
                )
            )
    return out


def _leavers(session: Session) -> list[Person]:
    return list(
        session.exec(
            select(Person)
            .where(or_(col(Person.active).is_(False), col(Person.left_at).is_not(None)))
            .order_by(col(Person.email))
        ).all()
    )


def leavers_hold_no_token(session: Session, ctx: Context) -> list[Violation]:
    """A person who left has no unrevoked API token and no live token issued to them by the token service."""
    rule = "leavers-hold-no-token"
    out: list[Violation] = []
    for person in _leavers(session):
        email = person.email.lower()
        tokens = session.exec(
            select(ApiToken).where(func.lower(ApiToken.person_email) == email, col(ApiToken.revoked_at).is_(None))
        ).all()
        for token in tokens:
            out.append(
                Violation(
                    rule,
                    None,
                    f"{person.email} left but API token #{token.id} ({token.name}) is not revoked",
                    f"orchestrator token revoke {token.id}",
                )
            )
        issued = session.exec(select(Credential).where(func.lower(Credential.subject) == email, *_live(ctx.now))).all()
        for credential in issued:
            out.append(
                Violation(
                    rule,
                    credential.app_id,
                    f"{person.email} left but token #{credential.id} issued to them is live",
                    f"orchestrator credentials revoke {credential.id}",
                )
            )
    return out


def leavers_own_no_active_app(session: Session, ctx: Context) -> list[Violation]:
    """A person who left owns or co-owns no app outside the hand-over chain (orphaned, suspended, on the way out)."""
    rule = "leavers-own-no-active-app"
    out: list[Violation] = []
    leavers = {p.email.lower(): p for p in _leavers(session)}
    if not leavers:
        return out
    for app in _apps(session):
        if app.stage in HANDOVER_STAGES:
            continue
        for email in sorted({o.lower() for o in app.owners} & leavers.keys()):
            role = "owns" if app.owner_email.lower() == email else "co-owns"
            out.append(
                Violation(
                    rule,
                    app.id,
                    f"{leavers[email].email} left but {role} it in stage {app.stage}",
                    f"orchestrator transfer {app.id} --owner NEW_OWNER",
                )
            )
    return out


def audit_chain_verifies(session: Session, ctx: Context) -> list[Violation]:
    """The hash chain verifies from the genesis to the tail."""
    result = audit.verify(session)
    if result.ok:
        return []
    return [
        Violation(
            "audit-chain-verifies",
            None,
            f"audit chain broken at entry {result.broken_seq}: {result.reason}",
            "orchestrator audit verify (then restore the entry from a backup or an export)",
        )
    ]


def stage_changes_audited(session: Session, ctx: Context) -> list[Violation]:
    """Every stage change has exactly one `lifecycle.*` audit entry.

    Replays each app's lifecycle entries: each must start where the previous one ended (a missing
    entry or a doubled one breaks the walk) and the last must end in the app's stage.
    """
    rule = "stage-changes-audited"
    out: list[Violation] = []
    moves: dict[str, list[AuditEntry]] = {}
    for entry in session.exec(
        select(AuditEntry).where(col(AuditEntry.action).startswith("lifecycle.")).order_by(col(AuditEntry.seq))
    ).all():
        if entry.app_id is not None:
            moves.setdefault(entry.app_id, []).append(entry)
    for app in _apps(session):
        at = Stage.registered.value
        for entry in moves.get(app.id, []):
            data = entry.data or {}
            if data.get("from") != at:
                out.append(
                    Violation(
                        rule,
                        app.id,
                        f"audit entry {entry.seq} ({entry.action}) starts from {data.get('from')} "
                        f"but the app was in {at}: a stage change is unaudited or audited twice",
                        f"orchestrator audit export --app {app.id} (investigate)",
                    )
                )
                break
            at = str(data.get("to"))
        else:
            if at != app.stage.value:
                out.append(
                    Violation(
                        rule,
                        app.id,
                        f"in stage {app.stage} but its last audited stage is {at}",
                        f"orchestrator audit export --app {app.id} (investigate)",
                    )
                )
    return out


def deadlines_belong(session: Session, ctx: Context) -> list[Violation]:
    """Every pending deadline belongs to an app in a stage that uses it (orchestrator.timers.plan)."""
    rule = "deadlines-belong"
    out: list[Violation] = []
    pending = session.exec(
        select(Deadline)
        .where(Deadline.status == DeadlineStatus.pending, col(Deadline.app_id).is_not(None))
        .order_by(col(Deadline.id))
    ).all()
    apps = {a.id: a for a in _apps(session)}
    approvals = {
        str(i)
        for i in session.exec(select(ApprovalRequest.id).where(ApprovalRequest.status == ApprovalStatus.pending)).all()
    }
    for deadline in pending:
        app = apps.get(deadline.app_id or "")
        fix = f"cancel deadline #{deadline.id}: UPDATE deadline SET status = 'cancelled' WHERE id = {deadline.id}"
        if app is None:
            out.append(Violation(rule, deadline.app_id, f"deadline #{deadline.id} ({deadline.kind}): no such app", fix))
            continue
        if deadline.kind == DeadlineKind.probe:
            continue
        if deadline.kind in _RETIRED_KINDS:
            ok = app.stage in (Stage.sunsetting, Stage.retired)
        elif deadline.kind in timer_plan.MANAGED_KINDS:
            ok = deadline.kind in {p.kind for p in timer_plan.plan(app, ctx.policy, now=ctx.now)}
        elif deadline.kind in timer_plan.GUARDED_KINDS:
            ok = timer_plan.still_applies(app, deadline.kind, deadline.ref, approvals)
        else:
            ok = True  # a kind this module does not know yet: not ours to judge
        if not ok:
            out.append(
                Violation(
                    rule, app.id, f"deadline #{deadline.id} ({deadline.kind}) is pending in stage {app.stage}", fix
                )
            )
    return out


# Every rule, in the order doctor lists them; the name is the function's.
RULES: dict[str, Rule] = {
    "inactive-app-holds-no-credential": inactive_app_holds_no_credential,
    "inactive-app-has-no-pending-request": inactive_app_has_no_pending_request,
    "events-handled": events_handled,
    "catalog-manifest-approved": catalog_manifest_approved,
    "production-app-holds-service-credential": production_app_holds_service_credential,
    "leavers-hold-no-token": leavers_hold_no_token,
    "leavers-own-no-active-app": leavers_own_no_active_app,
    "audit-chain-verifies": audit_chain_verifies,
    "stage-changes-audited": stage_changes_audited,
    "deadlines-belong": deadlines_belong,
}


def check_all(
    session: Session,
    *,
    now: datetime | None = None,
    policy: Policy | None = None,
    skip: Iterable[str] = (),
) -> list[Violation]:
    """Run every rule (but those named in `skip`) and return every violation, rule by rule."""
    ctx = Context(now=now or utcnow(), policy=policy or get_policy())
    skipped = set(skip)
    unknown = skipped - RULES.keys()
    if unknown:
        raise ValueError(f"unknown invariant rule(s): {', '.join(sorted(unknown))}")
    out: list[Violation] = []
    for name, rule in RULES.items():
        if name not in skipped:
            out.extend(rule(session, ctx))
    return out


def counts(violations: Iterable[Violation]) -> dict[str, int]:
    """Violations per rule, every rule present (0 when clean): the gauges' values."""
    tally = dict.fromkeys(RULES, 0)
    for violation in violations:
        tally[violation.rule] = tally.get(violation.rule, 0) + 1
    return tally


# ---------------------------------------------------------------- gauges: the snapshot the metrics export

# Where the scheduler leaves the latest snapshot for every API process to export (JSON).
SNAPSHOT_KEY = "orchestrator:health:snapshot"
# A pending deadline this late is overdue (the sweep runs every few seconds; a minute means it is stuck).
OVERDUE_GRACE = timedelta(seconds=60)


def operational_counts(session: Session, *, now: datetime | None = None) -> dict[str, float]:
    """The pipeline's health: outbox lag, parked/failed events, stuck notifications, blocked sunsets, overdue deadlines.

    Each is one indexed COUNT or MIN, cheap enough to run on every refresh.
    """
    from orchestrator.notifications.models import Notification, NotificationStatus
    from orchestrator.sunset.models import SunsetRun, SunsetStatus

    now = now or utcnow()
    oldest = session.exec(
        select(func.min(Event.received_at)).where(col(Event.status).in_([EventStatus.pending, EventStatus.enqueued]))
    ).one()
    by_status = dict(
        session.exec(
            select(Event.status, func.count())
            .where(col(Event.status).in_([EventStatus.parked, EventStatus.failed]))
            .group_by(Event.status)
        ).all()
    )

    def count(query: Any) -> int:
        return int(session.exec(query).one())

    return {
        "outbox_lag_seconds": max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest else 0.0,
        "events_parked": by_status.get(EventStatus.parked, 0),
        "events_failed": by_status.get(EventStatus.failed, 0),
        "notifications_sending": count(
            select(func.count()).select_from(Notification).where(Notification.status == NotificationStatus.sending)
        ),
        "sunsets_blocked": count(
            select(func.count()).select_from(SunsetRun).where(SunsetRun.status == SunsetStatus.blocked)
        ),
        "deadlines_overdue": count(
            select(func.count())
            .select_from(Deadline)
            .where(Deadline.status == DeadlineStatus.pending, col(Deadline.due_at) < now - OVERDUE_GRACE)
        ),
    }


def snapshot(session: Session, *, now: datetime | None = None, policy: Policy | None = None) -> dict[str, Any]:
    """Everything the gauges show: violations per rule and the operational counts, with when it was taken."""
    now = now or utcnow()
    return {
        "at": now.isoformat(),
        "violations": counts(check_all(session, now=now, policy=policy)),
        "operations": operational_counts(session, now=now),
    }


def publish_snapshot(redis_url: str, value: dict[str, Any], *, ttl_seconds: float) -> None:
    """Leave `value` in Redis for the API processes; it lapses if the scheduler stops refreshing it."""
    redis_snapshots.publish(redis_url, SNAPSHOT_KEY, value, ttl_seconds=ttl_seconds)


def load_snapshot(redis_url: str) -> dict[str, Any] | None:
    """The snapshot the scheduler published last, or None when there is none (or it lapsed)."""
    return redis_snapshots.load(redis_url, SNAPSHOT_KEY)
