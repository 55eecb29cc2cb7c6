"""What a sunset of an app would do, computed without changing anything (`orchestrator sunset APP --dry-run`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.lifecycle import RETIRABLE_STAGES, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy
from orchestrator.clock import utcnow
from orchestrator.config import Settings
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.credentials.service import live_credentials
from orchestrator.integrations.archive import store_from_url
from orchestrator.sunset.models import SunsetRun, SunsetStep
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import DeadlineKind

_STEPS = [SunsetStep.freeze, SunsetStep.revoke, SunsetStep.archive, SunsetStep.retire]


def _stage_change(app: MicroApp) -> str:
    if app.stage is Stage.sunsetting:
        return "already sunsetting"
    if app.stage in RETIRABLE_STAGES:
        return f"{app.stage.value} → sunsetting → retired"
    return f"not possible from {app.stage.value}"


def preview(session: Session, app: MicroApp, policy: Policy, settings: Settings) -> dict[str, Any]:
    """The steps still to run, the credentials to revoke, what the archive would hold, and where it goes."""
    run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app.id)).first()
    done = set(run.steps) if run else set()
    rules = policy.for_class(app.data_class)
    log_dir = settings.log_source_dir / app.id
    logs = [p for p in sorted(log_dir.rglob("*")) if p.is_file() and not p.is_symlink()] if log_dir.is_dir() else []
    zombies = session.exec(
        select(Credential).where(Credential.app_id == app.id, Credential.status == CredentialStatus.zombie)
    ).all()
    store = store_from_url(settings.archive_url, endpoint_url=settings.archive_s3_endpoint_url)
    group = rules.approver_group
    return {
        "app": app.id,
        "stage": app.stage.value,
        "stage_change": _stage_change(app),
        "run": None if run is None else {"id": run.id, "status": run.status.value, "step": run.step.value},
        "steps": [{"step": s.value, "state": "done" if s.value in done else "to do"} for s in _STEPS],
        "credentials_to_revoke": [
            {"id": c.id, "provider": c.provider, "subject": c.subject, "scopes": c.scopes}
            for c in live_credentials(session, app.id)
        ],
        "zombie_credentials": [c.id for c in zombies],
        "revoke_max_attempts": policy.sunset.revoke_max_attempts,
        "timers_to_cancel": [
            {"id": d.id, "kind": d.kind, "due_at": d.due_at.isoformat()}
            for d in deadlines.pending_for(session, app.id)
            if d.kind != DeadlineKind.retention_purge
        ],
        "archive": {
            "destination": store.uri(f"{app.id}/"),
            "audit_entries": session.exec(select(func.count()).where(col(AuditEntry.app_id) == app.id)).one(),
            "approvals": session.exec(select(func.count()).where(col(ApprovalRequest.app_id) == app.id)).one(),
            "credentials": session.exec(select(func.count()).where(col(Credential.app_id) == app.id)).one(),
            "log_files": len(logs),
            "log_bytes": sum(p.stat().st_size for p in logs),
        },
        "retention": {
            "days": rules.log_retention_days,
            "purge_after": (utcnow() + timedelta(days=rules.log_retention_days)).date().isoformat(),
            "legal_hold": app.legal_hold,
        },
        "notify": [app.owner_email, group.slack_channel],
        "alert_on_zombie": group.escalation_channel or group.slack_channel,
    }
