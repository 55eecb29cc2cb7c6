"""Computing the KPIs from the catalog, the audit trail, approvals, reviews and the credential ledger.

Every figure is one or two SQL statements that aggregate in the database (counts, `EXISTS` probes,
and on PostgreSQL `percentile_cont`), so a report costs the same whether the catalog holds 100 or
100,000 apps; only the per-group results come back. On SQLite the percentiles are computed here
from the one column of durations (`stats.percentile`, the same interpolation as `percentile_cont`).
An app's first approval, first escalation and last orphaning are read from the per-app milestones
the audit trail keeps (`orchestrator.audit.milestones`), not searched for in the trail.
The written definitions are in docs/kpis.md; `definitions.py` lists the ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import Session, col

from orchestrator.approvals.models import ApprovalKind, ApprovalRequest, ApprovalStatus
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.milestones import AppMilestone
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import DataClass, MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.credentials.enums import CredentialStatus
from orchestrator.credentials.models import Credential
from orchestrator.db import session_scope
from orchestrator.kpis import definitions
from orchestrator.kpis.definitions import Definition
from orchestrator.kpis.models import (
    FINDING_APP_CLASS,
    MILESTONE_APP_CLASS,
    MILESTONE_APP_CREATED,
    REQUEST_APP_CLASS,
    REQUEST_APP_CREATED,
    USAGE_APP_CLASS,
)
from orchestrator.kpis.stats import Distribution, Figure, Scope, share
from orchestrator.llm.models import LlmUsage, Outcome
from orchestrator.reviews.models import ReviewFinding

# The token service's provider name (orchestrator.credentials.tokens.builtin.BUILTIN).
TOKEN_SERVICE = "builtin"
EXPOSURE_CHECKS = ("secrets", "pii", "egress")
REMEDIATION_RULES = ("secrets", "vulnerable-dependency")
DECIDED = (ApprovalStatus.approved, ApprovalStatus.rejected, ApprovalStatus.changes_requested)
GONE = (Stage.sunsetting, Stage.retired)
# The egress review's findings of LLM traffic that does not go through an approved connector (the rules
# the egress check marks `llm_egress`): a provider's API called directly, its SDK used without an approved
# connector declared, or a connector declared that is not approved.
LLM_BYPASS_RULES = ("llm-direct-endpoint", "llm-sdk-without-approved-connector", "llm-connector-not-approved")
SERIES_INTERVALS = {"day": timedelta(days=1), "week": timedelta(weeks=1)}


@dataclass(frozen=True)
class _Ctx:
    session: Session
    scope: Scope
    now: datetime
    policy: Policy
    # Results of statements that serve several KPIs (see _shared), computed once per context.
    shared: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def postgres(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def app_filters(self) -> list[ColumnElement[bool]]:
        """The scope's conditions on MicroApp (data class, team, owner or co-owner)."""
        found: list[ColumnElement[bool]] = []
        if self.scope.data_class:
            found.append(col(MicroApp.data_class) == DataClass(self.scope.data_class))
        if self.scope.team is not None:
            found.append(col(MicroApp.team) == self.scope.team)
        if self.scope.owner is not None:
            found.append(_owned_by(self.scope.owner))
        return found

    def scoped(self, rows: Select[Any, Any], app_id: Any) -> Select[Any, Any]:
        """`rows` narrowed to the scope's apps: joined to MicroApp on `app_id` only when the scope selects some.

        The whole catalog's rows need no join: their data class (and registration time) are the
        copies on the row (kpis.models, migration kpis05), non-null exactly when the app exists.
        """
        if filters := self.app_filters():
            return rows.join(MicroApp, col(MicroApp.id) == app_id).where(*filters)
        return rows

    def in_window(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.scope.start, column < self.scope.end)

    def seconds(self, later: Any, earlier: Any) -> ColumnElement[float]:
        """`later - earlier` in seconds, as the dialect computes it."""
        if self.postgres:
            return cast(func.extract("epoch", later - earlier), Float)
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0


def _shared(ctx: _Ctx, key: str, compute: Callable[[], Any]) -> Any:
    """The result of a statement that several KPIs read (one scan of their table), run once per context.

    The KPIs that share one are computed in the same task by `report_concurrently` (`TASKS`).
    """
    if key not in ctx.shared:
        ctx.shared[key] = compute()
    return ctx.shared[key]


def _owned_by(email: str) -> ColumnElement[bool]:
    """Apps `email` owns or co-owns (co-owners are a JSON list; an empty email matches nothing)."""
    email = email.lower()
    if not email:
        return col(MicroApp.id).is_(None)
    escaped = email.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(
        col(MicroApp.owner_email) == email,
        cast(MicroApp.co_owners, String).like(f'%"{escaped}"%', escape="\\"),
    )


def _distribution(
    ctx: _Ctx, rows: Select[Any, Any] | Select[Any, Any, Any]
) -> tuple[Distribution, dict[str, Distribution]]:
    """The overall and per-group distribution of `rows` (columns `grp`, `seconds`), aggregated in SQL on PostgreSQL."""
    total, groups, _ = _distribution_and_sums(ctx, rows, ())
    return total, groups


def _distribution_and_sums(
    ctx: _Ctx, rows: Select[Any, Any], sums: tuple[str, ...]
) -> tuple[Distribution, dict[str, Distribution], dict[str, int]]:
    """`_distribution`, and the totals of the further integer columns `sums` of `rows`, in the same pass."""
    sub = rows.subquery()
    groups: dict[str, Distribution] = {}
    total = Distribution.of([])
    totals = dict.fromkeys(sums, 0)
    if ctx.postgres:
        x = sub.c.seconds
        stmt = select(
            sub.c.grp,
            func.count(x),
            func.percentile_cont(0.5).within_group(x),
            func.percentile_cont(0.9).within_group(x),
            func.max(x),
            func.grouping(sub.c.grp),
            *(func.sum(sub.c[name]) for name in sums),
        ).group_by(func.rollup(sub.c.grp))
        for grp, count, median, p90, largest, is_total, *summed in ctx.session.execute(stmt):
            found = Distribution(int(count), _f(median), _f(p90), _f(largest))
            if is_total:
                total = found
                totals = {name: int(v or 0) for name, v in zip(sums, summed, strict=True)}
            else:
                groups[str(grp)] = found
        return total, groups, totals
    values: dict[str, list[float]] = defaultdict(list)
    for grp, seconds, *summed in ctx.session.execute(select(sub.c.grp, sub.c.seconds, *(sub.c[n] for n in sums))):
        values[str(grp)].append(float(seconds))
        for name, v in zip(sums, summed, strict=True):
            totals[name] += int(v or 0)
    everything = [v for vs in values.values() for v in vs]
    return Distribution.of(everything), {g: Distribution.of(vs) for g, vs in values.items()}, totals


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _duration_figure(kpi: str, total: Distribution, groups: dict[str, Distribution], by: str) -> Figure:
    return Figure(
        id=kpi,
        value=total.as_dict()["median"],
        count=total.count,
        details=total.as_dict(),
        breakdown={g: {by: g, **d.as_dict()} for g, d in sorted(groups.items())},
    )


def _group_label(value: Any) -> str:
    return str(value.value if hasattr(value, "value") else value)


# ---------------------------------------------------------------- time to value


def _ttp_rows(ctx: _Ctx) -> Select[Any, Any, Any]:
    """(data class, seconds, at) of the apps whose first approval falls in the window."""
    # The first approval is the app's milestone (audit.milestones), kept as the entry is written:
    # no search of the audit trail for each app's earliest lifecycle.approve.
    # The app's class and registration time are the milestone's copies (no join to the apps).
    first = col(AppMilestone.first_approved_at)
    rows = select(
        MILESTONE_APP_CLASS.label("grp"),
        ctx.seconds(first, MILESTONE_APP_CREATED).label("seconds"),
        first.label("at"),
    ).where(ctx.in_window(first), MILESTONE_APP_CLASS.is_not(None))
    return ctx.scoped(rows, col(AppMilestone.app_id))


def time_to_production(ctx: _Ctx) -> Figure:
    """Registration to the app's first approval into production, for apps first approved in the window."""
    return _duration_figure("time_to_production", *_distribution(ctx, _ttp_rows(ctx)), by="data_class")


def _ttar_rows(ctx: _Ctx) -> Select[Any, Any, Any]:
    """(data class, seconds, at) of the first promotion requests opened in the window."""
    rows = select(
        REQUEST_APP_CLASS.label("grp"),
        ctx.seconds(col(ApprovalRequest.created_at), REQUEST_APP_CREATED).label("seconds"),
        col(ApprovalRequest.created_at).label("at"),
    ).where(
        col(ApprovalRequest.kind) == ApprovalKind.promotion,
        col(ApprovalRequest.cycle) == 1,
        ctx.in_window(col(ApprovalRequest.created_at)),
        REQUEST_APP_CLASS.is_not(None),
    )
    return ctx.scoped(rows, col(ApprovalRequest.app_id))


def time_to_approval_request(ctx: _Ctx) -> Figure:
    """Registration to the app's first promotion request, for first requests opened in the window."""
    return _duration_figure("time_to_approval_request", *_distribution(ctx, _ttar_rows(ctx)), by="data_class")


def _tta_rows(ctx: _Ctx) -> Select[Any, Any, Any]:
    """(data class, seconds, at) of the approval requests decided in the window."""
    rows = select(
        REQUEST_APP_CLASS.label("grp"),
        ctx.seconds(col(ApprovalRequest.decided_at), col(ApprovalRequest.created_at)).label("seconds"),
        col(ApprovalRequest.decided_at).label("at"),
    ).where(
        col(ApprovalRequest.status).in_(DECIDED),
        col(ApprovalRequest.decided_at).is_not(None),
        ctx.in_window(col(ApprovalRequest.decided_at)),
        REQUEST_APP_CLASS.is_not(None),
    )
    return ctx.scoped(rows, col(ApprovalRequest.app_id))


def _decisions(ctx: _Ctx) -> tuple[Distribution, dict[str, Distribution], dict[str, int]]:
    """The requests decided in the window: time to decide (overall, per data class), and the extensions among them.

    One pass serves `time_to_approve` and `extensions`: an extension decided in the window is one of
    the decided requests.
    """
    extension = col(ApprovalRequest.kind) == ApprovalKind.extension
    granted = and_(extension, col(ApprovalRequest.status) == ApprovalStatus.approved)
    rows = _tta_rows(ctx).add_columns(
        case((extension, 1), else_=0).label("extensions"), case((granted, 1), else_=0).label("granted")
    )
    return _shared(ctx, "decisions", lambda: _distribution_and_sums(ctx, rows, ("extensions", "granted")))  # type: ignore[no-any-return]


def time_to_approve(ctx: _Ctx) -> Figure:
    """Request to decision of the approval requests decided in the window, per approver group."""
    total, groups, _ = _decisions(ctx)
    figure = _duration_figure("time_to_approve", total, groups, by="data_class")
    for data_class, entry in figure.breakdown.items():
        group = ctx.policy.for_class(data_class).approver_group
        entry["approver_group"] = group.slack_channel
    return figure


# ---------------------------------------------------------------- tokens and connectors


_PRODUCTION_KEYS = (
    "production_apps", "with_other_credentials", "with_open_secret_findings", "not_compliant",
    "llm_apps", "through_connector", "with_connector_usage", "bypassing", "declared",
)  # fmt: skip


def _production_apps(ctx: _Ctx) -> dict[str, dict[str, int]]:
    """Per data class, the apps in production now counted for `scoped_token_share` and `llm_connector_share`.

    One pass over the apps in production for both: each set of apps (with a credential not from the
    token service, with an open secret, with connector calls in the window, with an open LLM bypass
    finding) is read once and hash-joined to them (a correlated EXISTS per app was 10x slower at
    100,000 apps).
    """

    def compute() -> dict[str, dict[str, int]]:
        foreign = (
            select(col(Credential.app_id).label("app_id"))
            .where(col(Credential.status) == CredentialStatus.live, col(Credential.provider) != TOKEN_SERVICE)
            .distinct()
            .subquery()
        )
        # The apps with an open secret and those with an open LLM bypass finding: one read of the open findings.
        secret = col(ReviewFinding.check) == "secrets"
        bypassing = and_(col(ReviewFinding.check) == "egress", col(ReviewFinding.rule).in_(LLM_BYPASS_RULES))
        open_findings = (
            select(
                col(ReviewFinding.app_id).label("app_id"),
                func.max(case((secret, 1), else_=0)).label("secret"),
                func.max(case((bypassing, 1), else_=0)).label("bypass"),
            )
            .where(
                or_(secret, bypassing),
                col(ReviewFinding.allowed).is_(False),
                col(ReviewFinding.resolved_at).is_(None),
            )
            .group_by(col(ReviewFinding.app_id))
            .subquery()
        )
        used = select(col(LlmUsage.app_id).label("app_id")).where(ctx.in_window(col(LlmUsage.at))).distinct().subquery()
        leaked_app = case((open_findings.c.secret == 1, open_findings.c.app_id), else_=None)
        bypass_app = case((open_findings.c.bypass == 1, open_findings.c.app_id), else_=None)
        declared = col(MicroApp.llm)["uses_llm"].as_boolean().is_(True)
        uses = or_(used.c.app_id.is_not(None), bypass_app.is_not(None), declared)
        through = and_(uses, bypass_app.is_(None))

        def number(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        stmt = (
            select(
                col(MicroApp.data_class),
                func.count(),
                func.count(foreign.c.app_id),
                func.count(leaked_app),
                func.count(func.coalesce(foreign.c.app_id, leaked_app)),
                number(uses),
                number(through),
                func.count(used.c.app_id),
                func.count(bypass_app),
                number(declared),
            )
            .select_from(MicroApp)
            .outerjoin(foreign, foreign.c.app_id == col(MicroApp.id))
            .outerjoin(open_findings, open_findings.c.app_id == col(MicroApp.id))
            .outerjoin(used, used.c.app_id == col(MicroApp.id))
            .where(col(MicroApp.stage) == Stage.production, *ctx.app_filters())
            .group_by(col(MicroApp.data_class))
        )
        return {
            _group_label(data_class): dict(zip(_PRODUCTION_KEYS, (int(c) for c in counts), strict=True))
            for data_class, *counts in ctx.session.execute(stmt)
        }

    return _shared(ctx, "production", compute)  # type: ignore[no-any-return]


def scoped_token_share(ctx: _Ctx) -> Figure:
    """Apps in production now whose every live credential comes from the token service and with no open secret."""
    per_class = _production_apps(ctx).values()
    total, with_foreign, with_secret, bad = (
        sum(row[key] for row in per_class)
        for key in ("production_apps", "with_other_credentials", "with_open_secret_findings", "not_compliant")
    )
    return Figure(
        id="scoped_token_share",
        value=share(total - bad, total),
        count=total,
        details={
            "compliant": total - bad,
            "with_other_credentials": with_foreign,
            "with_open_secret_findings": with_secret,
        },
    )


def llm_connector_share(ctx: _Ctx) -> Figure:
    """Of the apps in production now that use an LLM, the share with no LLM traffic around an approved connector."""
    keys = ("production_apps", "llm_apps", "through_connector", "with_connector_usage", "bypassing", "declared")
    totals = dict.fromkeys(keys, 0)
    breakdown: dict[str, dict[str, Any]] = {}
    for label, counts in _production_apps(ctx).items():
        row = {key: counts[key] for key in keys}
        for key in keys:
            totals[key] += row[key]
        if row["llm_apps"]:
            breakdown[label] = {
                "data_class": label,
                "llm_apps": row["llm_apps"],
                "through_connector": row["through_connector"],
                "share": share(row["through_connector"], row["llm_apps"]),
            }
    return Figure(
        id="llm_connector_share",
        value=share(totals["through_connector"], totals["llm_apps"]),
        count=totals["llm_apps"],
        details=totals,
        breakdown=dict(sorted(breakdown.items())),
    )


# ---------------------------------------------------------------- incidents and remediation


def _first_sighting() -> ColumnElement[bool]:
    """One row per finding episode: the row of the review that first saw it (a reopened finding is a new one)."""
    return col(ReviewFinding.review_id) == col(ReviewFinding.first_seen_review_id)


def _exposure_where(ctx: _Ctx) -> list[ColumnElement[bool]]:
    """The exposure findings first seen in the window (of an existing app: narrow to the scope with `ctx.scoped`)."""
    approved_before = exists().where(
        col(AppMilestone.app_id) == col(ReviewFinding.app_id),
        col(AppMilestone.first_approved_at) <= col(ReviewFinding.first_seen_at),
    )
    kind = or_(
        col(ReviewFinding.check).in_(("secrets", "pii")),
        and_(col(ReviewFinding.check) == "egress", col(ReviewFinding.rule).like("%llm%")),
    )
    return [
        _first_sighting(),
        col(ReviewFinding.allowed).is_(False),
        kind,
        ctx.in_window(col(ReviewFinding.first_seen_at)),
        approved_before,
        FINDING_APP_CLASS.is_not(None),
    ]


def exposure_findings(ctx: _Ctx) -> Figure:
    """Secret, PII and LLM-egress findings first seen in the window in apps approved into production before."""
    rows = select(FINDING_APP_CLASS, col(ReviewFinding.check), func.count()).where(*_exposure_where(ctx))
    stmt = ctx.scoped(rows, col(ReviewFinding.app_id)).group_by(FINDING_APP_CLASS, col(ReviewFinding.check))
    by_class: dict[str, dict[str, Any]] = {}
    by_check: dict[str, int] = dict.fromkeys(EXPOSURE_CHECKS, 0)
    for data_class, check, count in ctx.session.execute(stmt):
        entry = by_class.setdefault(_group_label(data_class), {"data_class": _group_label(data_class), "count": 0})
        entry["count"] += int(count)
        entry[check] = entry.get(check, 0) + int(count)
        by_check[check] += int(count)
    total = sum(by_check.values())
    return Figure(
        id="exposure_findings",
        value=float(total),
        count=total,
        details=by_check,
        breakdown=dict(sorted(by_class.items())),
    )


def _json_pairs(ctx: _Ctx) -> Any:
    """The (key, value) rows of `llm_usage.redactions`, as a table-valued function of each usage row."""
    name = "json_each_text" if ctx.postgres else "json_each"
    return getattr(func, name)(col(LlmUsage.redactions)).table_valued("key", "value").alias("redaction")


def _some_redactions() -> ColumnElement[bool]:
    """A cheap pre-filter: an empty `redactions` is stored as `{}` and holds nothing to unnest."""
    return cast(col(LlmUsage.redactions), String) != "{}"


def _has_values(ctx: _Ctx) -> ColumnElement[bool]:
    """The usage row's redactions count at least one value (of any kind)."""
    pairs = _json_pairs(ctx)
    found = exists(select(pairs.c.key).where(cast(pairs.c.value, Integer) > 0))
    return and_(_some_redactions(), found)


def _llm_counts() -> dict[str, Any]:
    return {
        "calls": 0, "blocked": 0, "blocked_by_policy": 0, "blocked_for_data": 0, "refused_other": 0,
        "redacted_calls": 0, "redacted_values": {}, "blocked_values": {},
    }  # fmt: skip


def llm_blocks_redactions(ctx: _Ctx) -> Figure:
    """Connector calls in the window that it blocked by policy or whose payload it redacted, per data class."""
    # Blocked by policy: the calls the connector audits as `llm.blocked` (a 403, or data found in block mode).
    # One statement, one pass over the window's calls (joined to their apps once, the `calls` CTE):
    # per combination of flags how many calls, and per kind the values their redactions counted. Only
    # the calls whose `redactions` is not the empty `{}` (most calls redact nothing) are unnested from
    # the JSON, each call by itself (a probe of its own row, whatever the planner guesses of the JSON).
    calls_rows = select(
        USAGE_APP_CLASS.label("data_class"),
        (col(LlmUsage.outcome) == Outcome.blocked).label("blocked"),
        (col(LlmUsage.status_code) == 403).label("forbidden"),
        col(LlmUsage.redactions).label("redactions"),
    ).where(ctx.in_window(col(LlmUsage.at)), USAGE_APP_CLASS.is_not(None))
    calls = ctx.scoped(calls_rows, col(LlmUsage.app_id)).cte("calls")
    name = "json_each_text" if ctx.postgres else "json_each"
    some = cast(calls.c.redactions, String) != "{}"
    probe = getattr(func, name)(calls.c.redactions).table_valued("key", "value").alias("probe")
    found = and_(some, exists(select(probe.c.key).where(cast(probe.c.value, Integer) > 0)))
    flags = select(calls.c.data_class, calls.c.blocked, calls.c.forbidden, found.label("found")).subquery()
    keys = (flags.c.data_class, flags.c.blocked, flags.c.forbidden, flags.c.found)
    per_call = select(literal("calls").label("part"), *keys, cast(null(), String).label("kind"), func.count()).group_by(
        *keys
    )
    pairs = getattr(func, name)(calls.c.redactions).table_valued("key", "value").alias("redaction")
    amount = cast(pairs.c.value, Integer)
    per_kind = (
        select(literal("kinds"), calls.c.data_class, calls.c.blocked, null(), null(), pairs.c.key, func.sum(amount))
        .select_from(calls)
        .join(pairs, true())
        .where(some, amount > 0)
        .group_by(calls.c.data_class, calls.c.blocked, pairs.c.key)
    )
    groups: dict[str, dict[str, Any]] = defaultdict(_llm_counts)
    for part, data_class, was_blocked, forbidden, has_values, kind, n in ctx.session.execute(
        union_all(per_call, per_kind)
    ):
        entry = groups[_group_label(data_class)]
        if part == "kinds":
            entry["blocked_values" if was_blocked else "redacted_values"][str(kind)] = int(n)
            continue
        entry["calls"] += int(n)
        if was_blocked:  # a call both refused with a 403 and carrying values counts in both, as before
            entry["blocked_by_policy"] += int(n) if forbidden else 0
            entry["blocked_for_data"] += int(n) if has_values else 0
            entry["refused_other"] += int(n) * (1 - bool(forbidden) - bool(has_values))
        elif has_values:
            entry["redacted_calls"] += int(n)
    totals = _llm_counts()
    for entry in groups.values():
        entry["blocked"] = entry["blocked_by_policy"] + entry["blocked_for_data"]
        entry["count"] = entry["blocked"] + entry["redacted_calls"]
        for key, value in entry.items():
            if isinstance(value, dict):
                for kind, n in value.items():
                    totals[key][kind] = totals[key].get(kind, 0) + n
            elif key != "count":
                totals[key] += value
    count = totals["blocked"] + totals["redacted_calls"]
    return Figure(
        id="llm_blocks_redactions",
        value=float(count),
        count=count,
        details=totals,
        breakdown={g: {"data_class": g, **e} for g, e in sorted(groups.items())},
    )


def _revocation_rows(ctx: _Ctx) -> Select[Any, Any, Any, Any]:
    """(at, entry id, data class, finding check) of the credentials revoked in the window because of a finding."""
    # credential.revoked entries are few (an index range on (action, at)); the link is their data's finding_id,
    # written by credentials.service when a revocation names the finding that forced it.
    finding_id = cast(col(AuditEntry.data)["finding_id"].as_string(), Integer)
    return (
        select(
            col(AuditEntry.at).label("at"),
            col(AuditEntry.id).label("x"),
            col(MicroApp.data_class).label("data_class"),
            col(ReviewFinding.check).label("check"),
        )
        .join(MicroApp, col(MicroApp.id) == col(AuditEntry.app_id))
        .join(ReviewFinding, col(ReviewFinding.id) == finding_id)
        .where(
            col(AuditEntry.action) == AuditAction.credential_revoked.value,
            ctx.in_window(col(AuditEntry.at)),
            *ctx.app_filters(),
        )
    )


def finding_revocations(ctx: _Ctx) -> Figure:
    """Credentials revoked in the window whose revocation names the review finding that forced it."""
    sub = _revocation_rows(ctx).subquery()
    stmt = select(sub.c.data_class, sub.c.check, func.count()).group_by(sub.c.data_class, sub.c.check)
    by_class: dict[str, dict[str, Any]] = {}
    by_check: dict[str, int] = {}
    for data_class, check, count in ctx.session.execute(stmt):
        label = _group_label(data_class)
        entry = by_class.setdefault(label, {"data_class": label, "count": 0})
        entry["count"] += int(count)
        entry[check] = entry.get(check, 0) + int(count)
        by_check[check] = by_check.get(check, 0) + int(count)
    total = sum(by_check.values())
    return Figure(
        id="finding_revocations",
        value=float(total),
        count=total,
        details=dict(sorted(by_check.items())),
        breakdown=dict(sorted(by_class.items())),
    )


def _remediable() -> ColumnElement[bool]:
    return or_(col(ReviewFinding.check) == "secrets", col(ReviewFinding.rule) == "vulnerable-dependency")


def _ttr_rows(ctx: _Ctx) -> Select[Any, Any, Any]:
    """(severity, seconds, at) of the vulnerability and secret findings resolved in the window."""
    rows: Select[Any, Any, Any] = select(
        col(ReviewFinding.severity).label("grp"),
        col(ReviewFinding.time_to_remediate_seconds).label("seconds"),
        col(ReviewFinding.resolved_at).label("at"),
    ).where(
        _first_sighting(),
        _remediable(),
        col(ReviewFinding.allowed).is_(False),
        col(ReviewFinding.time_to_remediate_seconds).is_not(None),
        ctx.in_window(col(ReviewFinding.resolved_at)),
    )
    # Severity and time are the finding's own: the apps are read only to narrow to the scope's (a join of
    # every finding of the window with its app was half this KPI's time at 100,000 apps).
    if filters := ctx.app_filters():
        rows = rows.join(MicroApp, col(MicroApp.id) == col(ReviewFinding.app_id)).where(*filters)
    return rows


def time_to_remediate(ctx: _Ctx) -> Figure:
    """First seen to resolved, for vulnerability and secret findings resolved in the window, per severity."""
    return _duration_figure("time_to_remediate", *_distribution(ctx, _ttr_rows(ctx)), by="severity")


def open_finding_age(ctx: _Ctx) -> Figure:
    """How long the vulnerability and secret findings still open now have been open, per severity."""
    # Of apps that exist (the copy is set) and are not gone: the few apps sunsetting or retired read as a set
    # to leave out (one hashed probe per finding), not every live app joined to the findings.
    gone = select(col(MicroApp.id)).where(col(MicroApp.stage).in_(GONE))
    rows: Select[Any, Any] = select(
        col(ReviewFinding.severity).label("grp"),
        ctx.seconds(ctx.now, col(ReviewFinding.first_seen_at)).label("seconds"),
    ).where(
        _first_sighting(),
        _remediable(),
        col(ReviewFinding.allowed).is_(False),
        col(ReviewFinding.resolved_at).is_(None),
        FINDING_APP_CLASS.is_not(None),
        col(ReviewFinding.app_id).not_in(gone),
    )
    rows = ctx.scoped(rows, col(ReviewFinding.app_id))
    return _duration_figure("open_finding_age", *_distribution(ctx, rows), by="severity")


# ---------------------------------------------------------------- onboarding


_MILESTONE_OF = {
    AuditAction.lifecycle_approve: col(AppMilestone.first_approved_at),
    AuditAction.lifecycle_escalate: col(AppMilestone.first_escalated_at),
}


def _registered_counts(ctx: _Ctx) -> tuple[int, int, int]:
    """Apps registered in the window: how many, how many approved into production since, how many escalated."""

    def compute() -> tuple[int, int, int]:
        stmt = (
            select(
                func.count(),
                func.count(col(AppMilestone.first_approved_at)),
                func.count(col(AppMilestone.first_escalated_at)),
            )
            .select_from(MicroApp)
            .outerjoin(AppMilestone, col(AppMilestone.app_id) == col(MicroApp.id))
            .where(ctx.in_window(col(MicroApp.created_at)), *ctx.app_filters())
        )
        total, approved, escalated = (int(v) for v in ctx.session.execute(stmt).one())
        return total, approved, escalated

    return _shared(ctx, "registered", compute)  # type: ignore[no-any-return]


def _registered_share(ctx: _Ctx, kpi: str, action: AuditAction) -> Figure:
    total, approved, escalated = _registered_counts(ctx)
    reached = approved if action is AuditAction.lifecycle_approve else escalated
    return Figure(id=kpi, value=share(reached, total), count=total, details={"registered": total, "reached": reached})


def onboarded_share(ctx: _Ctx) -> Figure:
    """Apps registered in the window that have been approved into production (by now)."""
    return _registered_share(ctx, "onboarded_share", AuditAction.lifecycle_approve)


def escalated_share(ctx: _Ctx) -> Figure:
    """Apps registered in the window that have been escalated to engineering (by now)."""
    return _registered_share(ctx, "escalated_share", AuditAction.lifecycle_escalate)


# ---------------------------------------------------------------- catalog health


def _catalog_counts(ctx: _Ctx) -> dict[str, int]:
    """The apps not sunsetting or retired now: how many, how many orphaned, expiring within 14 and 30 days."""

    def compute() -> dict[str, int]:
        expires = col(MicroApp.expires_at)

        def expiring(days: int) -> ColumnElement[bool]:
            return and_(expires >= ctx.now, expires < ctx.now + timedelta(days=days))

        def number(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        stmt = select(
            func.count(), number(col(MicroApp.stage) == Stage.orphaned), number(expiring(14)), number(expiring(30))
        ).where(col(MicroApp.stage).not_in(GONE), *ctx.app_filters())
        live, orphaned, in_14, in_30 = (int(v) for v in ctx.session.execute(stmt).one())
        return {"live": live, "orphaned": orphaned, "expiring_14d": in_14, "expiring_30d": in_30}

    return _shared(ctx, "catalog", compute)  # type: ignore[no-any-return]


def orphan_rate(ctx: _Ctx) -> Figure:
    """Orphaned apps among the apps not sunsetting or retired, now, and how long they have been orphaned."""
    counts = _catalog_counts(ctx)
    total, orphaned = counts["live"], counts["orphaned"]
    since = col(AppMilestone.last_orphaned_at)
    rows: Select[Any, Any] = (
        select(cast(col(MicroApp.stage), String).label("grp"), ctx.seconds(ctx.now, since).label("seconds"))
        .join(AppMilestone, col(AppMilestone.app_id) == col(MicroApp.id))
        .where(col(MicroApp.stage) == Stage.orphaned, since.is_not(None), *ctx.app_filters())
    )
    age, _ = _distribution(ctx, rows)
    return Figure(
        id="orphan_rate",
        value=share(orphaned, total),
        count=total,
        details={"orphaned": orphaned, "age": age.as_dict()},
    )


def _expiring(ctx: _Ctx, kpi: str, days: int) -> Figure:
    count = _catalog_counts(ctx)[kpi]
    return Figure(id=kpi, value=float(count), count=count, details={"from": ctx.now.isoformat(), "days": days})


def expiring_14d(ctx: _Ctx) -> Figure:
    """Apps (not sunsetting or retired) whose expiry falls in the next 14 days."""
    return _expiring(ctx, "expiring_14d", 14)


def expiring_30d(ctx: _Ctx) -> Figure:
    """Apps (not sunsetting or retired) whose expiry falls in the next 30 days."""
    return _expiring(ctx, "expiring_30d", 30)


def extensions(ctx: _Ctx) -> Figure:
    """Extension requests decided in the window: granted against refused (rejected or changes requested)."""
    _, _, counts = _decisions(ctx)
    total, yes = counts["extensions"], counts["granted"]
    return Figure(
        id="extensions", value=share(yes, total), count=total, details={"granted": yes, "refused": total - yes}
    )


def retirements(ctx: _Ctx) -> Figure:
    """Apps sent to sunset in the window: by expiry (the sunset timer) against on request."""
    sunset, requested = AuditAction.lifecycle_expire.value, AuditAction.lifecycle_retire.value
    stmt = (
        select(col(AuditEntry.action), func.count(func.distinct(col(AuditEntry.app_id))))
        .join(MicroApp, col(MicroApp.id) == col(AuditEntry.app_id))
        .where(col(AuditEntry.action).in_((sunset, requested)), ctx.in_window(col(AuditEntry.at)), *ctx.app_filters())
        .group_by(col(AuditEntry.action))
    )
    counts = {str(action): int(n) for action, n in ctx.session.execute(stmt)}
    by_sunset, on_request = counts.get(sunset, 0), counts.get(requested, 0)
    total = by_sunset + on_request
    return Figure(
        id="retirements", value=float(total), count=total, details={"by_sunset": by_sunset, "on_request": on_request}
    )


def inactive_apps(ctx: _Ctx) -> Figure:
    """Distinct apps the inactivity timer flagged in the window."""
    stmt = (
        select(func.count(func.distinct(col(AuditEntry.app_id))))
        .join(MicroApp, col(MicroApp.id) == col(AuditEntry.app_id))
        .where(
            col(AuditEntry.action) == AuditAction.app_inactive.value,
            ctx.in_window(col(AuditEntry.at)),
            *ctx.app_filters(),
        )
    )
    count = int(ctx.session.execute(stmt).scalar_one())
    return Figure(id="inactive_apps", value=float(count), count=count)


COMPUTE: dict[str, Callable[[_Ctx], Figure]] = {
    "time_to_production": time_to_production,
    "time_to_approval_request": time_to_approval_request,
    "time_to_approve": time_to_approve,
    "scoped_token_share": scoped_token_share,
    "llm_connector_share": llm_connector_share,
    "exposure_findings": exposure_findings,
    "llm_blocks_redactions": llm_blocks_redactions,
    "finding_revocations": finding_revocations,
    "time_to_remediate": time_to_remediate,
    "open_finding_age": open_finding_age,
    "onboarded_share": onboarded_share,
    "escalated_share": escalated_share,
    "orphan_rate": orphan_rate,
    "expiring_14d": expiring_14d,
    "expiring_30d": expiring_30d,
    "extensions": extensions,
    "retirements": retirements,
    "inactive_apps": inactive_apps,
}


def _unavailable(definition: Definition) -> Figure:
    return Figure(id=definition.id, value=None, count=None, reason=definition.unavailable_reason)


# The KPIs over findings' first sightings (see _aggregate_plans).
_HASH_JOINED = frozenset({"exposure_findings", "open_finding_age", "time_to_remediate"})


@contextmanager
def _aggregate_plans(session: Session, kpi: str) -> Iterator[None]:
    """On PostgreSQL, no nested-loop joins for a first-sightings KPI's statements (then the setting is reset).

    The planner estimates `review_id = first_seen_review_id` (a finding's first sighting) at 0.5% of
    the rows, as for any comparison of two columns, and so joins tens of thousands of findings to
    their apps one index probe at a time. These statements aggregate a whole window of findings,
    where hash joins are the right plan: about 1.5x faster for exposures, open-finding age and
    remediation at 100,000 apps (docs/kpis.md, "How it stays fast"). Only those: the other KPIs'
    estimates are sound, and some need a nested loop (the JSON unnesting of the connector's calls).
    """
    postgres = kpi in _HASH_JOINED and session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL enable_nestloop = off"))
    yield
    # Not on an error: the transaction is aborted then, and its rollback undoes SET LOCAL anyway.
    if postgres:
        session.execute(text("RESET enable_nestloop"))


def figure(session: Session, kpi: str, scope: Scope, *, policy: Policy, now: datetime | None = None) -> Figure:
    """One KPI over `scope` (KeyError for an unknown id)."""
    definition = definitions.get(kpi)
    if definition.unavailable_reason:
        return _unavailable(definition)
    with _aggregate_plans(session, kpi):
        return COMPUTE[kpi](_Ctx(session, _utc_scope(scope), as_utc(now or utcnow()), policy))


def report(session: Session, scope: Scope, *, policy: Policy, now: datetime | None = None) -> list[Figure]:
    """Every KPI over `scope`, in the order of `definitions.DEFINITIONS`."""
    ctx = _Ctx(session, _utc_scope(scope), as_utc(now or utcnow()), policy)
    figures = []
    for d in definitions.DEFINITIONS:
        if d.unavailable_reason:
            figures.append(_unavailable(d))
            continue
        with _aggregate_plans(session, d.id):
            figures.append(COMPUTE[d.id](ctx))
    return figures


# The KPIs of one report in groups that run side by side, each group on its own connection, its KPIs one
# after the other in one transaction: the KPIs that read the same statement's result (`_shared`) are in the
# same group. The costliest first (as measured by `python -m bench.kpis`, which times each group on its
# own), so that the short ones fill in behind them on the pool.
TASKS: tuple[tuple[str, ...], ...] = (
    ("scoped_token_share", "llm_connector_share"),
    ("llm_blocks_redactions",),
    ("exposure_findings",),
    ("time_to_approve", "extensions"),
    ("time_to_approval_request",),
    ("time_to_remediate",),
    ("orphan_rate", "expiring_14d", "expiring_30d"),
    ("open_finding_age",),
    ("retirements", "inactive_apps", "finding_revocations"),
    ("onboarded_share", "escalated_share"),
    ("time_to_production",),
)
# Statements of one report run side by side on their own connections: about twice as fast on two cores.
_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kpis")


def report_group(kpis: tuple[str, ...], scope: Scope, *, policy: Policy, now: datetime) -> dict[str, Figure]:
    """One group of `TASKS` in its own read-only transaction (what `report_concurrently` runs on each thread)."""
    found: dict[str, Figure] = {}
    with session_scope(write=False) as session:
        ctx = _Ctx(session, _utc_scope(scope), as_utc(now), policy)
        if ctx.postgres:
            # The groups already run side by side on the pool: parallel workers for one statement would
            # only add processes to start on the same cores (measured: no faster, often slower).
            session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        for kpi in kpis:
            definition = definitions.get(kpi)
            if definition.unavailable_reason:
                found[kpi] = _unavailable(definition)
                continue
            with _aggregate_plans(session, kpi):
                found[kpi] = COMPUTE[kpi](ctx)
    return found


def report_concurrently(scope: Scope, *, policy: Policy, now: datetime | None = None) -> list[Figure]:
    """`report`, each group of `TASKS` in its own read-only transaction on a small thread pool (same order, same `now`).

    The figures may come from transactions a few milliseconds apart: a write landing meanwhile shows
    in some figures and not others, as it would between two requests. When one KPI fails, the groups not
    started are cancelled and the error is raised only once the running ones have closed their
    sessions: no connection is still in use (and then handed back to a pool disposed of meanwhile,
    to be collected open) after this returns.
    """
    moment = as_utc(now or utcnow())
    utc_scope = _utc_scope(scope)
    futures = [_pool.submit(report_group, kpis, utc_scope, policy=policy, now=moment) for kpis in TASKS]
    _, running = wait(futures, return_when=FIRST_EXCEPTION)
    for future in running:
        future.cancel()
    wait(futures)
    for future in futures:
        if not future.cancelled() and (error := future.exception()) is not None:
            raise error
    figures = {kpi: f for future in futures for kpi, f in future.result().items()}
    return [figures[d.id] for d in definitions.DEFINITIONS]


def buckets(start: datetime, end: datetime, interval: str) -> Iterator[tuple[datetime, datetime]]:
    """[start, end) cut into consecutive intervals (the last one cut short at `end`)."""
    step = SERIES_INTERVALS[interval]
    at = as_utc(start)
    end = as_utc(end)
    while at < end:
        yield at, min(at + step, end)
        at += step


@dataclass(frozen=True)
class _SeriesSpec:
    """How a windowed KPI is cut into intervals: its rows (columns `at`, `x`) and how a bucket sums them."""

    rows: Callable[[_Ctx], Select[Any, Any]]
    kind: str  # duration (x: seconds), share (x: 0 or 1), count (rows), distinct (distinct x)
    details: Callable[[int, int], dict[str, Any]] = lambda whole, part: {}


def _timed_rows(builder: Callable[[_Ctx], Select[Any, Any, Any]]) -> Callable[[_Ctx], Select[Any, Any]]:
    def rows(ctx: _Ctx) -> Select[Any, Any]:
        sub = builder(ctx).subquery()
        return select(sub.c.at, sub.c.seconds.label("x"))

    return rows


def _registered_rows(action: AuditAction) -> Callable[[_Ctx], Select[Any, Any]]:
    reached_at = _MILESTONE_OF[action]

    def rows(ctx: _Ctx) -> Select[Any, Any]:
        return (
            select(col(MicroApp.created_at).label("at"), case((reached_at.is_not(None), 1), else_=0).label("x"))
            .outerjoin(AppMilestone, col(AppMilestone.app_id) == col(MicroApp.id))
            .where(ctx.in_window(col(MicroApp.created_at)), *ctx.app_filters())
        )

    return rows


def _extension_rows(ctx: _Ctx) -> Select[Any, Any]:
    granted = case((col(ApprovalRequest.status) == ApprovalStatus.approved, 1), else_=0)
    rows = select(col(ApprovalRequest.decided_at).label("at"), granted.label("x")).where(
        col(ApprovalRequest.kind) == ApprovalKind.extension,
        col(ApprovalRequest.status).in_(DECIDED),
        ctx.in_window(col(ApprovalRequest.decided_at)),
        REQUEST_APP_CLASS.is_not(None),
    )
    return ctx.scoped(rows, col(ApprovalRequest.app_id))


def _exposure_rows(ctx: _Ctx) -> Select[Any, Any]:
    rows: Select[Any, Any] = select(col(ReviewFinding.first_seen_at).label("at"), col(ReviewFinding.id).label("x"))
    return ctx.scoped(rows.where(*_exposure_where(ctx)), col(ReviewFinding.app_id))


def _llm_intervention_rows(ctx: _Ctx) -> Select[Any, Any]:
    """(at, usage id) of the calls `llm_blocks_redactions` counts: blocked with a 403, or with values found."""
    policy_block = and_(col(LlmUsage.outcome) == Outcome.blocked, col(LlmUsage.status_code) == 403)
    rows: Select[Any, Any] = select(col(LlmUsage.at).label("at"), col(LlmUsage.id).label("x")).where(
        ctx.in_window(col(LlmUsage.at)), or_(policy_block, _has_values(ctx)), USAGE_APP_CLASS.is_not(None)
    )
    return ctx.scoped(rows, col(LlmUsage.app_id))


def _revocation_series_rows(ctx: _Ctx) -> Select[Any, Any]:
    sub = _revocation_rows(ctx).subquery()
    return select(sub.c.at, sub.c.x)


def _audit_rows(*actions: AuditAction) -> Callable[[_Ctx], Select[Any, Any]]:
    def rows(ctx: _Ctx) -> Select[Any, Any]:
        return (
            select(col(AuditEntry.at).label("at"), (col(AuditEntry.app_id) + ":" + col(AuditEntry.action)).label("x"))
            .join(MicroApp, col(MicroApp.id) == col(AuditEntry.app_id))
            .where(
                col(AuditEntry.action).in_([a.value for a in actions]),
                ctx.in_window(col(AuditEntry.at)),
                *ctx.app_filters(),
            )
        )

    return rows


SERIES: dict[str, _SeriesSpec] = {
    "time_to_production": _SeriesSpec(_timed_rows(_ttp_rows), "duration"),
    "time_to_approval_request": _SeriesSpec(_timed_rows(_ttar_rows), "duration"),
    "time_to_approve": _SeriesSpec(_timed_rows(_tta_rows), "duration"),
    "time_to_remediate": _SeriesSpec(_timed_rows(_ttr_rows), "duration"),
    "exposure_findings": _SeriesSpec(_exposure_rows, "count"),
    "llm_blocks_redactions": _SeriesSpec(_llm_intervention_rows, "distinct"),
    "finding_revocations": _SeriesSpec(_revocation_series_rows, "count"),
    "onboarded_share": _SeriesSpec(
        _registered_rows(AuditAction.lifecycle_approve), "share", lambda n, k: {"registered": n, "reached": k}
    ),
    "escalated_share": _SeriesSpec(
        _registered_rows(AuditAction.lifecycle_escalate), "share", lambda n, k: {"registered": n, "reached": k}
    ),
    "extensions": _SeriesSpec(_extension_rows, "share", lambda n, k: {"granted": k, "refused": n - k}),
    "retirements": _SeriesSpec(_audit_rows(AuditAction.lifecycle_expire, AuditAction.lifecycle_retire), "distinct"),
    "inactive_apps": _SeriesSpec(_audit_rows(AuditAction.app_inactive), "distinct"),
}


def _bucket_aggregates(ctx: _Ctx, spec: _SeriesSpec, step: timedelta) -> dict[int, tuple[Any, ...]]:
    """Per interval index: (count, median, p90, max) for durations, (count, sum) for shares, (count,) else."""
    sub = spec.rows(ctx).subquery()
    x = sub.c.x
    if ctx.postgres:
        offset = cast(func.extract("epoch", sub.c.at - ctx.scope.start), Float)
        bucket = func.floor(offset / step.total_seconds()).label("b")
        options: dict[str, list[Any]] = {
            "duration": [
                func.count(x),
                func.percentile_cont(0.5).within_group(x),
                func.percentile_cont(0.9).within_group(x),
                func.max(x),
            ],
            "share": [func.count(x), func.sum(x)],
            "count": [func.count(x)],
            "distinct": [func.count(func.distinct(x))],
        }
        measures = options[spec.kind]
        stmt = select(bucket, *measures).group_by(bucket)
        return {int(b): tuple(rest) for b, *rest in ctx.session.execute(stmt)}
    values: dict[int, list[Any]] = defaultdict(list)
    for at, value in ctx.session.execute(select(sub.c.at, x)):
        values[int((as_utc(at) - ctx.scope.start) // step)].append(value)
    found: dict[int, tuple[Any, ...]] = {}
    for b, xs in values.items():
        if spec.kind == "duration":
            d = Distribution.of([float(v) for v in xs])
            found[b] = (d.count, d.median, d.p90, d.max)
        elif spec.kind == "share":
            found[b] = (len(xs), sum(int(v) for v in xs))
        else:
            found[b] = (len(set(xs)) if spec.kind == "distinct" else len(xs),)
    return found


def _point(kpi: str, spec: _SeriesSpec, aggregates: tuple[Any, ...] | None) -> Figure:
    if spec.kind == "duration":
        count, median, p90, largest = aggregates or (0, None, None, None)
        d = Distribution(int(count), _f(median), _f(p90), _f(largest))
        return Figure(id=kpi, value=d.as_dict()["median"], count=d.count, details=d.as_dict())
    if spec.kind == "share":
        whole, part = (int(v or 0) for v in (aggregates or (0, 0)))
        return Figure(id=kpi, value=share(part, whole), count=whole, details=spec.details(whole, part))
    count = int((aggregates or (0,))[0])
    return Figure(id=kpi, value=float(count), count=count)


def series(
    session: Session, kpi: str, scope: Scope, *, interval: str, policy: Policy, now: datetime | None = None
) -> list[tuple[datetime, datetime, Figure]]:
    """One windowed KPI per interval of the scope's window (ValueError for a snapshot KPI).

    One statement for the whole series: the rows of the window, grouped by interval in SQL on
    PostgreSQL (in Python on SQLite). Each point equals the KPI computed over its own interval.
    """
    definition = definitions.get(kpi)
    if kpi not in definitions.SERIES_IDS:
        raise ValueError(f"{kpi} has no series ({definition.kind.value}, {definition.status.value})")
    spec = SERIES[kpi]
    step = SERIES_INTERVALS[interval]
    ctx = _Ctx(session, _utc_scope(scope), as_utc(now or utcnow()), policy)
    with _aggregate_plans(session, kpi):
        aggregates = _bucket_aggregates(ctx, spec, step)
    return [
        (start, end, _point(kpi, spec, aggregates.get(index)))
        for index, (start, end) in enumerate(buckets(ctx.scope.start, ctx.scope.end, interval))
    ]


def _utc_scope(scope: Scope) -> Scope:
    return Scope(as_utc(scope.start), as_utc(scope.end), scope.data_class, scope.team, scope.owner)


def as_dict(figure: Figure) -> dict[str, Any]:
    """A figure with its definition (id, title, unit, status, where it is written down) for JSON output."""
    definition = definitions.get(figure.id)
    return {
        "id": figure.id,
        "title": definition.title,
        "definition": definition.doc,
        "unit": definition.unit,
        "kind": definition.kind.value,
        "headline": definition.headline,
        "status": definition.status.value,
        "value": figure.value,
        "count": figure.count,
        "reason": figure.reason,
        "details": figure.details,
        "breakdown": figure.breakdown,
    }
