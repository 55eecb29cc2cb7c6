"""Who may call which model, and the records of each call (usage rows, audit entries on a block).

`decide` is pure: given the app's stage and data class and the policy, the reason a call is refused
or None. The records never hold a prompt, an answer, a redacted value or a key: counts and names only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlmodel import Session, col, select

from orchestrator.audit.actions import AuditAction
from orchestrator.audit.service import record as audit_record
from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import LlmPolicy, Policy
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.llm.models import LlmUsage
from orchestrator.logs import get_logger
from orchestrator.reviews.checks.egress import ORCHESTRATOR_CONNECTOR

SCOPE = "llm:invoke"
CONNECTOR = ORCHESTRATOR_CONNECTOR  # the name a manifest declares (`llm.connector`)
APP_CACHE_SECONDS = 5.0
log = get_logger(__name__)


@dataclass(frozen=True)
class AppFacts:
    """What the connector needs to know about the calling app."""

    app_id: str
    stage: str
    data_class: str


class Refused(Exception):
    """A call the connector refuses: an HTTP status, a provider-neutral kind and the reason."""

    def __init__(self, status: int, kind: str, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind  # authentication | permission | invalid_request | not_found | too_large | rate_limit
        self.reason = reason
        self.retry_after = retry_after


def decide_app(facts: AppFacts | None, policy: Policy) -> LlmPolicy:
    """The app's LLM rules, or Refused (403) with the reason it may not call an LLM at all."""
    if facts is None:
        raise Refused(401, "authentication", "the token's app is not in the catalog")
    if facts.stage != Stage.production.value:
        raise Refused(403, "permission", f"app {facts.app_id} is not in production (stage: {facts.stage})")
    rules = policy.for_class(facts.data_class).llm
    if not rules.enabled:
        raise Refused(403, "permission", f"the {facts.data_class} data class does not allow LLM use")
    return rules


def decide_model(rules: LlmPolicy, provider: str, model: str | None) -> None:
    """Refused (403 permission / 400) unless `model` of `provider` is allowed for the app's class."""
    allowed = rules.models.get(provider)  # type: ignore[call-overload]
    if not allowed:
        raise Refused(403, "permission", f"{provider} is not an allowed provider for this app's data class")
    if not model:
        raise Refused(400, "invalid_request", "`model` is required")
    if model not in allowed:
        raise Refused(403, "permission", f"model {model} is not allowed for this app (allowed: {', '.join(allowed)})")


def allowed_models(rules: LlmPolicy, provider: str) -> list[str]:
    """The models of `provider` the app may use."""
    return list(rules.models.get(provider) or [])  # type: ignore[call-overload]


class AppCache:
    """The stage and data class of apps, read from the catalog at most every APP_CACHE_SECONDS.

    A suspension or sunset also revokes the app's tokens, which introspection sees at once.
    """

    def __init__(self, ttl: float = APP_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._rows: dict[str, tuple[float, AppFacts | None]] = {}
        self._lock = threading.Lock()

    def cached(self, app_id: str) -> tuple[bool, AppFacts | None]:
        """(True, facts) when a fresh entry exists."""
        with self._lock:
            entry = self._rows.get(app_id)
        if entry is not None and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def load(self, app_id: str) -> AppFacts | None:
        """Read the app from the catalog (and cache it)."""
        with session_scope(write=False) as session:
            app = session.get(MicroApp, app_id)
            facts = AppFacts(app.id, str(app.stage.value), str(app.data_class.value)) if app else None
        with self._lock:
            if len(self._rows) > 10_000:
                self._rows.clear()
            self._rows[app_id] = (time.monotonic() + self.ttl, facts)
        return facts

    def forget(self) -> None:
        """Drop every entry (tests)."""
        with self._lock:
            self._rows.clear()


app_cache = AppCache()


class UsageWriter:
    """Writes usage rows in batches from a background thread, off the request path.

    One multi-row INSERT per FLUSH_SECONDS instead of one ORM transaction per call: at 100 calls/s
    a transaction per call would cost more than the rest of the connector. Rows are queued as plain
    column values (no ORM object on the event loop). A batch the database cannot take now
    (unreachable, locked) is queued again, in front, and retried with the next one (up to MAX_PENDING
    rows; past that the oldest are dropped, logged); a batch it refuses is written row by row, so only
    a row refused alone is dropped (logged).
    The API's shutdown flushes what is queued and waits for a write under way. Blocks, which also
    write an audit entry, are written at once by `record_usage`.
    """

    FLUSH_SECONDS = 0.2
    MAX_PENDING = 100_000

    def __init__(self, interval: float = FLUSH_SECONDS) -> None:
        self.interval = interval
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one write at a time: a shutdown flush waits for the writer's
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, row: LlmUsage | dict[str, Any]) -> None:
        """Queue one row, a model or its column values (written within `interval`)."""
        values = row.model_dump() if isinstance(row, LlmUsage) else row
        with self._lock:
            self._rows.append(values)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llm-usage-writer", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        """Rows queued and not written yet."""
        with self._lock:
            return len(self._rows)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self.flush():
                with self._lock:
                    if not self._rows:
                        self._thread = None
                        return

    def flush(self) -> int:
        """Write every queued row now; the number written (a failed batch stays queued)."""
        with self._writing:
            with self._lock:
                batch, self._rows = self._rows, []
            if not batch:
                return 0
            for values in batch:
                values.pop("id", None)  # the database numbers the rows
                values.setdefault("at", utcnow())
            try:
                with session_scope() as session:
                    session.execute(insert(LlmUsage), batch)
            except (OperationalError, InterfaceError) as exc:  # the database is away or busy: kept
                with self._lock:
                    self._rows[:0] = batch
                    dropped = len(self._rows) - self.MAX_PENDING
                    if dropped > 0:
                        del self._rows[:dropped]
                log.warning("LLM usage rows could not be written; retried", rows=len(batch), error=str(exc))
                if dropped > 0:
                    log.error("LLM usage rows dropped: the database refused writes for too long", rows=dropped)
                return 0
            except Exception:  # some row is refused: write them one by one, so only that one is lost
                return self._write_each(batch)
            return len(batch)

    @staticmethod
    def _write_each(batch: list[dict[str, Any]]) -> int:
        written = 0
        for values in batch:
            try:
                with session_scope() as session:
                    session.execute(insert(LlmUsage), [values])
                written += 1
            except Exception as exc:  # retrying a refused row would block the queue behind it
                log.error("an LLM usage row was refused by the database; dropped", app_id=values.get("app_id"),
                          error=type(exc).__name__)  # fmt: skip
        return written


usage_writer = UsageWriter()


def record_usage(row: LlmUsage, *, audit_reason: str | None = None, actor: str = "") -> None:
    """Write one usage row; a block also writes an audit entry (kinds and counts only)."""
    with session_scope() as session:
        session.add(row)
        if audit_reason is not None:
            audit_record(
                session,
                actor=actor or f"service:{row.app_id}",
                action=AuditAction.llm_blocked,
                app_id=row.app_id,
                reason=audit_reason,
                data={
                    "provider": row.provider,
                    "endpoint": row.endpoint,
                    "model": row.model,
                    "redactions": dict(row.redactions),
                },
            )


def usage_rows(session: Session, app_id: str, *, since: datetime | None = None, limit: int = 100) -> Sequence[LlmUsage]:
    """The app's most recent usage rows, newest first."""
    query = select(LlmUsage).where(LlmUsage.app_id == app_id)
    if since is not None:
        query = query.where(col(LlmUsage.at) >= since)
    return session.exec(query.order_by(col(LlmUsage.at).desc(), col(LlmUsage.id).desc()).limit(limit)).all()


def usage_summary(rows: Sequence[LlmUsage]) -> dict[str, object]:
    """Totals over usage rows: calls by outcome, tokens, redactions by kind."""
    outcomes: dict[str, int] = {}
    redactions: dict[str, int] = {}
    prompt = completion = 0
    for row in rows:
        outcomes[str(row.outcome)] = outcomes.get(str(row.outcome), 0) + 1
        prompt += row.prompt_tokens
        completion += row.completion_tokens
        for kind, count in row.redactions.items():
            redactions[kind] = redactions.get(kind, 0) + count
    return {
        "calls": len(rows),
        "outcomes": outcomes,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "redactions": redactions,
    }
