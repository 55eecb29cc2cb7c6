"""`POST /api/v1/apps/{id}/usage`: an app (or its owner) says it is still in use.

The inactivity deadline reads `last_used_at`, which this ping and the token service keep fresh; the
timer re-arms itself from it when it fires, so a ping is one conditional UPDATE at most every
USAGE_RECORD_INTERVAL_SECONDS, never a deadline rewrite.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import or_, update
from sqlmodel import col

from orchestrator.auth.service import can_see
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import ACTIVE_STAGES, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import as_utc, utcnow
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.errors import Conflict, NotFound
from orchestrator.http.deps import CurrentToken, PolicyDep

router = APIRouter(prefix="/api/v1/apps", tags=["usage"])


class UsageRecorded(BaseModel):
    """The app's recorded last use and when it would count as inactive."""

    app_id: str
    last_used_at: datetime
    recorded: bool
    inactive_after: datetime


@router.post("/{app_id}/usage", status_code=202, response_model=UsageRecorded)
def record_usage(app_id: str, token: CurrentToken, policy: PolicyDep) -> UsageRecorded:
    """Record that the app is in use (throttled: a ping soon after the last recorded one writes nothing)."""
    structlog.contextvars.bind_contextvars(app_id=app_id)
    now = utcnow()
    interval = timedelta(seconds=get_settings().usage_record_interval_seconds)
    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        if not can_see(token, app):
            raise NotFound(f"no app with id {app_id!r}")
        if app.stage not in ACTIVE_STAGES | {Stage.expiring}:
            raise Conflict(f"app {app_id} is {app.stage.value}; usage is no longer recorded")
        written = session.exec(
            update(MicroApp)
            .where(col(MicroApp.id) == app_id)
            .where(or_(col(MicroApp.last_used_at).is_(None), col(MicroApp.last_used_at) < now - interval))
            .values(last_used_at=now)
        ).rowcount
        session.refresh(app)
        last = as_utc(app.last_used_at or now)
    days = policy.for_class(app.data_class).inactivity_days
    return UsageRecorded(
        app_id=app_id, last_used_at=last, recorded=bool(written), inactive_after=last + timedelta(days=days)
    )
