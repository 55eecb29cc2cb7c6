"""What a finished review does to the app, in the transaction that stores it.

First, the manifest the review read (when valid) is compared with the catalog's: what narrows the
app's reach applies at once, and the owner is told (`orchestrator.catalog.updates`); what widens it
made the verdict `needs_approval` (a `manifest-widened` finding) and is adopted on approval.

- `pass` in a data class whose policy auto-approves clean reviews → the reviewed manifest becomes the
  catalog's and the app is approved (actor "policy");
- `needs_approval` (or a pass the data class does not auto-approve) → a promotion ApprovalRequest
  with the review attached, handed to the Slack approvals feature (`request_approval`);
- `escalate` → the app moves to `engineering`, with a hand-over summary in the audit trail, the
  engineering channel told and the owner notified;
- `fail` → the owner is notified with the findings (redacted previews only); the app stays put.

Only an app still `in_review` is moved; a review of an app that left in the meantime (expiring,
orphaned …) is recorded and a failing one still reaches the owner. Every review emits
`review.completed` with its verdict.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from orchestrator.approvals.flows import request_approval
from orchestrator.approvals.messages import escape, redact
from orchestrator.approvals.models import ApprovalKind
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog import updates
from orchestrator.catalog.lifecycle import POLICY_ACTOR, Action, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.config import Settings
from orchestrator.credentials import handover
from orchestrator.events.outbox import emit
from orchestrator.events.types import EventType
from orchestrator.notifications.delivery import app_url
from orchestrator.notifications.service import notify
from orchestrator.reviews.checks.findings import ReviewResult, Severity, severity_rank
from orchestrator.reviews.models import Review
from orchestrator.timers import service as deadlines

LISTED = 10  # findings listed in a message; the rest are counted


def _lines(review: dict[str, Any]) -> list[str]:
    lines = []
    for f in review["findings"][:LISTED]:
        where = f"{f.get('file') or '-'}{':' + str(f['line']) if f.get('line') else ''}"
        preview = f" `{escape(redact(str(f['preview'])))}`" if f.get("preview") else ""
        lines.append(f"• {f['severity']} {escape(f['rule'])} in `{escape(where)}`{preview}")
    if review["total"] > LISTED:
        lines.append(f"…and {review['total'] - LISTED} more")
    return lines


def _counts(review: dict[str, Any]) -> str:
    counts = review.get("counts") or {}
    order = sorted(Severity, key=severity_rank, reverse=True)
    return ", ".join(f"{counts[s]} {s}" for s in order if counts.get(s)) or "no findings"


def drive_lifecycle(
    session: Session,
    app: MicroApp,
    review: Review,
    result: ReviewResult,
    attached: dict[str, Any],
    *,
    policy: Policy,
    settings: Settings,
    reviewed: dict[str, Any] | None = None,
) -> str:
    """Apply the verdict to the app (see the module docstring); returns what was done."""
    assert review.id is not None
    verdict = result.verdict
    if reviewed is not None:
        # Less reach applies whatever the verdict; more waits for the approval of this review.
        updates.apply_at_once(
            session, app, reviewed, actor=POLICY_ACTOR, policy=policy, source=f"read by automated review #{review.id}"
        )
    rules = policy.for_class(app.data_class)
    _audit_allowed(session, app, review, result)
    if app.stage is not Stage.in_review:
        done = f"app is {app.stage.value}; lifecycle unchanged"
        if verdict == "fail":
            _notify_failed(session, app, review, attached)
    elif verdict == "pass" and rules.auto_approve_clean:
        # A request an earlier review opened is superseded: the app is approved without it.
        _withdraw_request(session, app, review, verdict)
        if reviewed is not None:
            updates.adopt_approved(session, app, reviewed, actor=POLICY_ACTOR, policy=policy, review_id=review.id)
        catalog.apply_action(
            session,
            app,
            Action.approve,
            actor=POLICY_ACTOR,
            policy=policy,
            reason=f"automated review #{review.id} is clean and {app.data_class.value} apps are approved automatically",
            data={"review_id": review.id, "commit": review.commit},
        )
        # The approved app's service credential, sealed for its owner to claim.
        handover.on_app_approved(session, app, policy=policy, actor=POLICY_ACTOR)
        deadlines.reschedule_app(session, app, policy)
        notify(
            session,
            to=app.owner_email,
            key=f"review:{review.id}:approved",
            app_id=app.id,
            text=f"✅ *{escape(app.name)}* passed its automated review and is approved: {app_url(app.id)}",
        )
        done = "approved"
    elif verdict in ("pass", "needs_approval"):
        done = _ask_for_approval(session, app, review, attached, policy=policy)
    elif verdict == "escalate":
        _withdraw_request(session, app, review, verdict)
        _escalate(session, app, review, result, attached, policy=policy, settings=settings)
        done = "escalated"
    else:
        _withdraw_request(session, app, review, verdict)
        _notify_failed(session, app, review, attached)
        done = "owner notified"
    audit.record(
        session,
        actor=POLICY_ACTOR,
        action=AuditAction.review_completed,
        app_id=app.id,
        reason=f"verdict {verdict}: {done}",
        data={"review_id": review.id, "verdict": verdict, "commit": review.commit, "counts": attached["counts"]},
    )
    emit(
        session,
        type=EventType.review_completed,
        source="worker",
        app_id=app.id,
        payload={
            "review_id": review.id,
            "verdict": verdict,
            "commit": review.commit,
            "outcome": done,
            "counts": attached["counts"],
            "total": attached["total"],
        },
        dedup_key=f"review.completed:{review.id}",
    )
    return done


def _withdraw_request(session: Session, app: MicroApp, review: Review, verdict: str) -> None:
    # An approver must not approve on the strength of an older review that this one contradicts.
    from orchestrator.approvals.service import cancel_pending

    cancel_pending(session, app.id, reason=f"superseded by automated review #{review.id} (verdict {verdict})")


def _audit_allowed(session: Session, app: MicroApp, review: Review, result: ReviewResult) -> None:
    """Allow-listed findings (inline comment or policy fingerprint) do not count, but are on the record."""
    allowed = [f for f in result.findings if f.allowed]
    if not allowed:
        return
    listed = [
        {
            "check": f.check,
            "rule": f.rule,
            "file": f.file,
            "line": f.line,
            "fingerprint": f.fingerprint,
            "reason": f.allow_reason,
        }
        for f in allowed[:100]
    ]
    audit.record(
        session,
        actor=POLICY_ACTOR,
        action=AuditAction.review_findings_allowed,
        app_id=app.id,
        reason=f"{len(allowed)} allow-listed finding(s) not counted",
        data={"review_id": review.id, "findings": listed},
    )


def _ask_for_approval(
    session: Session, app: MicroApp, review: Review, attached: dict[str, Any], *, policy: Policy
) -> str:
    approval, new = catalog.open_approval(
        session,
        app,
        kind=ApprovalKind.promotion,
        requested_by=app.owner_email,
        reason=f"automated review #{review.id}: {attached['verdict']} ({_counts(attached)})",
        review_id=review.id,
        payload={"review": attached},
    )
    if not new:
        # A request is already pending: it now carries the newest review (its page shows it).
        approval.review_id, approval.payload = review.id, {**approval.payload, "review": attached}
        session.add(approval)
        audit.record(
            session,
            actor=POLICY_ACTOR,
            action=AuditAction.approval_review_updated,
            app_id=app.id,
            data={"approval_id": approval.id, "review_id": review.id},
        )
    assert approval.id is not None
    request_approval(session, approval.id, policy=policy)
    deadlines.reschedule_app(session, app, policy)
    return f"approval request #{approval.id}{'' if new else ' (already pending; review attached)'}"


def handover_summary(app: MicroApp, review: Review, result: ReviewResult, attached: dict[str, Any]) -> dict[str, Any]:
    """What engineering needs to pick the app up: why it was escalated and what it reaches."""
    manifest = result.manifest or {}
    reasons = [f.message for f in result.active_findings() if f.check == "escalation"]
    return {
        "review_id": review.id,
        "commit": review.commit,
        "owner": app.owner_email,
        "data_class": app.data_class.value,
        "reasons": reasons,
        "connectors": list(manifest.get("connectors") or [])[:50],
        "scopes": list(manifest.get("scopes") or [])[:50],
        "external_endpoints": list(manifest.get("external_endpoints") or [])[:50],
        "findings": attached["counts"],
    }


def _escalate(
    session: Session,
    app: MicroApp,
    review: Review,
    result: ReviewResult,
    attached: dict[str, Any],
    *,
    policy: Policy,
    settings: Settings,
) -> None:
    handover = handover_summary(app, review, result, attached)
    why = "; ".join(handover["reasons"]) or "escalation thresholds exceeded"
    catalog.apply_action(
        session,
        app,
        Action.escalate,
        actor=POLICY_ACTOR,
        policy=policy,
        reason=f"automated review #{review.id}: {why}",
        data={"review_id": review.id},
    )
    audit.record(
        session,
        actor=POLICY_ACTOR,
        action=AuditAction.review_handover,
        app_id=app.id,
        reason=f"handed to engineering: {why}",
        data=handover,
    )
    deadlines.reschedule_app(session, app, policy)
    text = (
        f"🛠️ *{escape(app.name)}* ({app.data_class.value}, owner {escape(app.owner_email)}) is handed to engineering "
        f"by automated review #{review.id}: {escape(why)}.\n"
        f"Connectors: {escape(', '.join(handover['connectors']) or 'none')}; scopes: "
        f"{escape(', '.join(handover['scopes']) or 'none')}; endpoints: {len(handover['external_endpoints'])}; "
        f"findings: {_counts(attached)}.\n{app_url(app.id)}"
    )
    notify(
        session, to=settings.review_engineering_channel, text=text, key=f"review:{review.id}:handover", app_id=app.id
    )
    notify(
        session,
        to=app.owner_email,
        key=f"review:{review.id}:escalated",
        app_id=app.id,
        text=f"🛠️ *{escape(app.name)}* needs more than an automated review ({escape(why)}); it is handed to "
        f"engineering, who will contact you. {app_url(app.id)}",
    )


def _notify_failed(session: Session, app: MicroApp, review: Review, attached: dict[str, Any]) -> None:
    header = (
        f"❌ The automated review of *{escape(app.name)}* failed ({_counts(attached)}). "
        f"Fix these and push again; the app stays where it is until then."
    )
    text = "\n".join([header, *_lines(attached), app_url(app.id)])
    notify(session, to=app.owner_email, text=text, key=f"review:{review.id}:failed", app_id=app.id)
