"""GitHub never redelivers a failed webhook by itself: this job asks it to.

For each hook in GITHUB_HOOKS it lists the recent deliveries (back to
GITHUB_REDELIVERY_LOOKBACK_HOURS), groups the attempts by delivery GUID, and for every GUID that
never got a 2xx, that we have not stored anyway, and that was tried fewer than
GITHUB_REDELIVERY_MAX_ATTEMPTS times, asks for a redelivery of its latest attempt. So an outage of
our API loses nothing (GitHub keeps deliveries for 3 days). The relay loop runs it every
GITHUB_REDELIVERY_INTERVAL_SECONDS; on PostgreSQL an advisory lock keeps it to one relay at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import col, select

from orchestrator.clock import utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.db import get_engine, session_scope
from orchestrator.errors import ConfigError
from orchestrator.events.models import Event
from orchestrator.integrations.github import Delivery, GitHubClient
from orchestrator.logs import get_logger

log = get_logger(__name__)

_HOOK_RE = re.compile(r"^(repos/[^/\s]+/[^/\s]+|orgs/[^/\s]+)/hooks/\d+$")
# Arbitrary constant key for pg_try_advisory_lock: "ghredel" in ASCII.
_PG_LOCK_KEY = 0x676872656465
DEDUP_PREFIX = "github:"


@dataclass
class RedeliveryReport:
    """What one run of the job saw and asked for."""

    checked: int = 0
    redelivered: list[str] = field(default_factory=list)  # GUIDs
    skipped: bool = False


def parse_hooks(spec: str) -> list[str]:
    """The hook API paths in GITHUB_HOOKS; ConfigError naming a malformed entry."""
    hooks = [h.strip().strip("/") for h in spec.split(",") if h.strip()]
    for hook in hooks:
        if not _HOOK_RE.match(hook):
            raise ConfigError(f"GITHUB_HOOKS: {hook!r} is not repos/OWNER/REPO/hooks/ID or orgs/ORG/hooks/ID")
    return hooks


def _parse_time(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def recent_deliveries(client: GitHubClient, hook: str, since: datetime) -> list[Delivery]:
    """The hook's delivery attempts since `since` (pages are newest first; stop past it)."""
    found: list[Delivery] = []
    for page in client.list_deliveries(hook):
        for delivery in page:
            at = _parse_time(delivery.delivered_at)
            if at is not None and at < since:
                return found
            found.append(delivery)
    return found


def to_redeliver(deliveries: list[Delivery], *, known: set[str], max_attempts: int) -> list[Delivery]:
    """The latest attempt of each GUID that never succeeded, is not stored here, and has attempts left."""
    by_guid: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        by_guid.setdefault(delivery.guid, []).append(delivery)
    chosen = []
    for guid, attempts in by_guid.items():
        if not guid or guid in known or any(a.ok for a in attempts) or len(attempts) >= max_attempts:
            continue
        chosen.append(max(attempts, key=lambda a: (a.delivered_at, a.id)))
    return chosen


def _stored(guids: set[str]) -> set[str]:
    if not guids:
        return set()
    keys = [DEDUP_PREFIX + g for g in guids]
    with session_scope(write=False) as session:
        rows = session.exec(select(Event.dedup_key).where(col(Event.dedup_key).in_(keys))).all()
    return {key[len(DEDUP_PREFIX) :] for key in rows}


@contextmanager
def _only_one() -> Iterator[bool]:
    """True when this process may run the job now (a PostgreSQL advisory lock; SQLite: always)."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as conn:
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_LOCK_KEY}).scalar())
        try:
            yield got
        finally:
            if got:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
            conn.rollback()


def redeliver_failed(settings: Settings | None = None, *, client: GitHubClient | None = None) -> RedeliveryReport:
    """Run the job once over every configured hook."""
    settings = settings or get_settings()
    report = RedeliveryReport()
    hooks = parse_hooks(settings.github_hooks)
    if not hooks or (settings.github_token is None and client is None):
        report.skipped = True
        return report
    since = utcnow() - timedelta(hours=settings.github_redelivery_lookback_hours)
    with _only_one() as allowed:
        if not allowed:
            report.skipped = True
            return report
        own = client or GitHubClient.from_settings(settings)
        try:
            for hook in hooks:
                deliveries = recent_deliveries(own, hook, since)
                report.checked += len(deliveries)
                failed_guids = {d.guid for d in deliveries if not d.ok}
                chosen = to_redeliver(
                    deliveries, known=_stored(failed_guids), max_attempts=settings.github_redelivery_max_attempts
                )
                for delivery in chosen:
                    own.redeliver(hook, delivery.id)
                    report.redelivered.append(delivery.guid)
                    log.info("asked GitHub to redeliver", hook=hook, guid=delivery.guid, delivery_id=delivery.id)
        finally:
            if client is None:
                own.close()
    return report
