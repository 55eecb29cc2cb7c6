"""A catalog with a known history, built through the real services under the controllable clock.

Every step runs in its own transaction at a chosen instant (`orchestrator.clock.frozen_at`), so the
KPI tests can compute each expected figure by hand from the timeline below (T0 = Monday 2 March
2026, 09:00 UTC; the window of the tests is [T0, T0 + 7 days), "now" is T0 + 7 days):

| app   | class      | team  | owner   | history                                                            |
|-------|------------|-------|---------|--------------------------------------------------------------------|
| alpha | internal   | sales | maker1  | reg T0; review +1h; request +2h; approved +5h; 4 reviews of findings |
| beta  | internal   | ops   | maker2  | reg T0+1d; review +1h; request +3h; approved +11h; builtin token     |
| gamma | public     | sales | maker1  | reg T0+2d; request +1h; rejected +2h; extension granted T0+4d;       |
|       |            |       |         | expiring T0+6d, expired T0+6d+1h (sunset)                            |
| delta | restricted | ops   | maker2  | reg T0+3d; escalated +1h; extension refused T0+4d; retired T0+5d     |
| eps   | public     | ops   | maker3  | reg T0-10d; approved directly T0+3d (no request); slack credential;  |
|       |            |       |         | found inactive T0+4d; LLM connector: 2 emails masked T0+3d+2h,       |
|       |            |       |         | a model not allowed (blocked, 403) T0+5d                             |
| zeta  | internal   | ops   | leaver  | reg T0-20d; approved directly T0-19d; owner left, orphaned T0+2d     |
| eta   | regulated  | sales | maker1  | reg T0+6d (expires in 14 days); review T0+6d+1h with an open secret  |
|       |            |       |         | that forces the revocation of its token T0+6d+3h (finding_revocations) |
| theta | restricted | sales | maker3  | reg T0+6d+2h (expires in 30 days)                                    |

alpha's findings: review 1 (T0+1d) sees secret S (high), vulnerability V (critical), PII P (medium),
LLM egress E (high) and a plain egress X (low); review 2 (T0+3d) sees V only (S, P, E, X resolved);
review 3 (T0+4d) sees V and S again (S reopened: a new episode); review 4 (T0+6d) sees nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from orchestrator.approvals.models import ApprovalKind
from orchestrator.approvals.service import Decision, decide
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import Action
from orchestrator.catalog.manifest import Manifest
from orchestrator.catalog.models import Person
from orchestrator.catalog.policy import get_policy
from orchestrator.clock import frozen_at
from orchestrator.config import get_settings
from orchestrator.credentials import service as credentials
from orchestrator.db import session_scope
from orchestrator.llm.models import LlmUsage, Outcome
from orchestrator.llm.service import record_usage
from orchestrator.reviews.checks.findings import Finding, ReviewResult, Severity, fingerprint
from orchestrator.reviews.models import ReviewFinding
from orchestrator.reviews.results import store_result
from orchestrator.reviews.store import Job, claim, queue_review
from tests.helpers.timers import FakeProvider

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=7)
H, D = timedelta(hours=1), timedelta(days=1)
APPROVER = "approver@example.com"  # may decide internal and restricted apps
IT = "it-platform@example.com"  # may decide public and internal apps
SECURITY = "security@example.com"  # may decide restricted and regulated apps


def at(moment: datetime, step: Callable[[Session], Any]) -> Any:
    """Run `step` in its own committed transaction with the clock frozen at `moment`."""
    with frozen_at(moment), session_scope() as session:
        return step(session)


def register(app_id: str, data_class: str, team: str, owner: str, moment: datetime) -> None:
    """Register an app as its owner would."""
    manifest = Manifest(id=app_id, name=app_id.title(), owner=owner, team=team, data_class=data_class)
    at(moment, lambda s: catalog.register_app(s, manifest, actor=owner, policy=get_policy()))


def act(app_id: str, action: Action, moment: datetime, actor: str = "policy") -> None:
    """One lifecycle action on an app."""
    at(moment, lambda s: catalog.apply_action(s, catalog.get_app(s, app_id), action, actor=actor, policy=get_policy()))


def request_approval(app_id: str, moment: datetime, kind: ApprovalKind = ApprovalKind.promotion) -> int:
    """Open an approval request (as the pipeline does after a review) and return its id."""

    def step(session: Session) -> int:
        app = catalog.get_app(session, app_id)
        if kind is ApprovalKind.extension:
            request, _ = catalog.request_extension(
                session, app, actor=app.owner_email, days=10, reason="more time", policy=get_policy()
            )
        else:
            request, _ = catalog.open_approval(session, app, kind=kind, requested_by="policy", reason="review")
        assert request.id is not None
        return request.id

    result: int = at(moment, step)
    return result


def decide_at(approval_id: int, decision: Decision, actor: str, moment: datetime) -> None:
    """An approver's decision."""
    reason = "" if decision is Decision.approve else "not now"
    at(moment, lambda s: decide(s, approval_id, decision=decision, actor=actor, via="web", reason=reason))


def finding(check: str, rule: str, severity: Severity, key: str) -> Finding:
    """A finding of the kind a check reports (fingerprinted, no secret in it)."""
    return Finding(
        check=check, rule=rule, file="app.py", line=1, severity=severity, fingerprint=fingerprint(key),
        preview="***", message=f"{rule} found",
    )  # fmt: skip


def review(app_id: str, moment: datetime, findings: list[Finding]) -> None:
    """Queue, claim and store one automated review with these findings, all at `moment`."""
    policy, settings = get_policy(), get_settings()

    def step(session: Session) -> None:
        review_id = queue_review(
            session, catalog.get_app(session, app_id), trigger="app.updated", event_id=None, ref=None, policy=policy
        )
        assert review_id is not None
        session.flush()
        job = claim(session, review_id, settings=settings, policy=policy)
        assert isinstance(job, Job)
        result = ReviewResult(verdict="needs_approval", findings=findings, skipped=[], manifest=None, stats={})
        store_result(session, job, result, commit=None, source="manifest-only", skipped=[])

    at(moment, step)


def llm_call(app_id: str, moment: datetime, outcome: Outcome, status: int, redactions: dict[str, int]) -> None:
    """One call's usage row as the connector writes it (with its `llm.blocked` audit entry for a 403)."""
    with frozen_at(moment):
        row = LlmUsage(
            app_id=app_id, provider="openai", endpoint="chat", model="gpt-4o-mini", status_code=status,
            outcome=outcome, redactions=redactions,
        )  # fmt: skip
        record_usage(row, audit_reason="model not allowed" if status == 403 else None)


S = finding("secrets", "aws-access-key", Severity.high, "S")
V = finding("dependencies", "vulnerable-dependency", Severity.critical, "V")
P = finding("pii", "pii-email", Severity.medium, "P")
E = finding("egress", "llm-direct-endpoint", Severity.high, "E")
X = finding("egress", "undeclared-endpoint", Severity.low, "X")
S_ETA = finding("secrets", "aws-access-key", Severity.high, "S-eta")


def build() -> None:
    """The whole history of the table in the module docstring."""
    # alpha: reviewed, asked, approved
    register("alpha", "internal", "sales", "maker1@example.com", T0)
    act("alpha", Action.submit_for_review, T0 + H)
    decide_at(request_approval("alpha", T0 + 2 * H), Decision.approve, APPROVER, T0 + 5 * H)
    # beta
    register("beta", "internal", "ops", "maker2@example.com", T0 + D)
    act("beta", Action.submit_for_review, T0 + D + H)
    decide_at(request_approval("beta", T0 + D + 3 * H), Decision.approve, APPROVER, T0 + D + 11 * H)
    # gamma: rejected, extended, then sent to sunset by its expiry
    register("gamma", "public", "sales", "maker1@example.com", T0 + 2 * D)
    act("gamma", Action.submit_for_review, T0 + 2 * D)
    decide_at(request_approval("gamma", T0 + 2 * D + H), Decision.reject, IT, T0 + 2 * D + 2 * H)
    decide_at(request_approval("gamma", T0 + 4 * D, ApprovalKind.extension), Decision.approve, IT, T0 + 4 * D + H)
    act("gamma", Action.mark_expiring, T0 + 6 * D)
    act("gamma", Action.expire, T0 + 6 * D + H)
    # delta: escalated, extension refused, retired on request
    register("delta", "restricted", "ops", "maker2@example.com", T0 + 3 * D)
    act("delta", Action.submit_for_review, T0 + 3 * D)
    act("delta", Action.escalate, T0 + 3 * D + H)
    decide_at(
        request_approval("delta", T0 + 4 * D, ApprovalKind.extension), Decision.reject, SECURITY, T0 + 4 * D + 2 * H
    )
    at(
        T0 + 5 * D,
        lambda s: catalog.request_retirement(
            s, catalog.get_app(s, "delta"), actor="maker2@example.com", reason="done", policy=get_policy()
        ),
    )
    # eps: registered before the window, approved in it without a request (skipped a stage)
    register("eps", "public", "ops", "maker3@example.com", T0 - 10 * D)
    act("eps", Action.submit_for_review, T0 - 9 * D)
    act("eps", Action.approve, T0 + 3 * D, actor=IT)
    slack = FakeProvider("slack")
    at(
        T0 + 3 * D + H,
        lambda s: credentials.register_credential(
            s, "eps", provider_name="slack", external_ref="slack-bot-1", actor=IT, providers=slack.providers
        ),
    )
    at(
        T0 + 4 * D,
        lambda s: audit.record(s, actor="policy", action=AuditAction.app_inactive, app_id="eps", reason="unused"),
    )
    llm_call("eps", T0 + 3 * D + 2 * H, Outcome.ok, 200, {"email": 2})
    llm_call("eps", T0 + 5 * D, Outcome.blocked, 403, {})
    builtin = FakeProvider("builtin")
    at(
        T0 + 2 * D,
        lambda s: credentials.register_credential(
            s, "beta", provider_name="builtin", external_ref="jti-1", actor=IT, providers=builtin.providers
        ),
    )
    # zeta: its owner leaves, it is orphaned
    register("zeta", "internal", "ops", "leaver@example.com", T0 - 20 * D)
    act("zeta", Action.submit_for_review, T0 - 20 * D)
    act("zeta", Action.approve, T0 - 19 * D, actor=APPROVER)

    def leave(session: Session) -> None:
        person = session.get(Person, "leaver@example.com")
        assert person is not None
        person.active, person.left_at = False, T0 + 2 * D
        session.add(person)

    at(T0 + 2 * D, leave)
    act("zeta", Action.orphan, T0 + 2 * D)
    # eta and theta: new sandbox apps close to expiry
    register("eta", "regulated", "sales", "maker1@example.com", T0 + 6 * D)
    review("eta", T0 + 6 * D + H, [S_ETA])
    register("theta", "restricted", "sales", "maker3@example.com", T0 + 6 * D + 2 * H)
    # alpha's findings over four reviews
    review("alpha", T0 + D, [S, V, P, E, X])
    review("alpha", T0 + 3 * D, [V])
    review("alpha", T0 + 4 * D, [V, S])
    review("alpha", T0 + 6 * D, [])
    # eta's leaked secret forces the revocation of its token: the revocation names the finding
    eta_token = FakeProvider("builtin")
    token_id = at(
        T0 + 6 * D + 2 * H,
        lambda s: (
            credentials.register_credential(
                s, "eta", provider_name="builtin", external_ref="jti-eta", actor=IT, providers=eta_token.providers
            ).id
        ),
    )

    def revoke_for_the_leak(session: Session) -> None:
        leak = session.exec(select(ReviewFinding).where(ReviewFinding.app_id == "eta")).one()
        credentials.revoke_credential(
            session, token_id, actor=SECURITY, reason="secret leaked in the repository",
            providers=eta_token.providers, finding_id=leak.id,
        )  # fmt: skip

    at(T0 + 6 * D + 3 * H, revoke_for_the_leak)
