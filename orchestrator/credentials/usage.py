"""The app's last-used time, which the inactivity deadline reads, kept cheaply.

A token exchange already writes, so it sets `last_used_at` in its own transaction when the stored
value is older than INTERVAL. Introspection must stay off the database: each process remembers when
it last wrote for an app and writes at most once per INTERVAL per app, with a conditional UPDATE
(so several processes add at most one write each per interval), off the request path.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, or_

from orchestrator.catalog.models import MicroApp
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.logs import get_logger

INTERVAL = timedelta(seconds=60)
log = get_logger(__name__)


def touch_in_session(session: Session, app: MicroApp, *, now: datetime | None = None) -> None:
    """Set `app.last_used_at` in the caller's transaction unless it is recent."""
    now = now or utcnow()
    if app.last_used_at is None or now - app.last_used_at >= INTERVAL:
        app.last_used_at = now
        session.add(app)


def record_use(app_id: str, *, now: datetime | None = None) -> bool:
    """Write `last_used_at` for `app_id` if the stored value is older than INTERVAL; True if written."""
    now = now or utcnow()
    with session_scope() as session:
        result = session.exec(
            update(MicroApp)
            .where(col(MicroApp.id) == app_id)
            .where(or_(col(MicroApp.last_used_at).is_(None), col(MicroApp.last_used_at) < now - INTERVAL))
            .values(last_used_at=now)
        )
        return bool(result.rowcount)


class UsageThrottle:
    """Remembers, per process, when each app's use was last written."""

    def __init__(self, interval: timedelta = INTERVAL) -> None:
        self.interval = interval.total_seconds()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, app_id: str) -> bool:
        """True (and start a new interval) when this process has not written for `app_id` lately."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(app_id)
            if last is not None and now - last < self.interval:
                return False
            self._last[app_id] = now
            return True

    def forget(self) -> None:
        """Start afresh (tests)."""
        with self._lock:
            self._last.clear()


throttle = UsageThrottle()


def record_use_quietly(app_id: str) -> None:
    """`record_use` for a background thread: a failure is logged, never raised."""
    try:
        record_use(app_id)
    except Exception as exc:  # a missed usage update must never fail a request
        log.warning("could not record app use", app_id=app_id, error=str(exc))


_pending: set[object] = set()
_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="app-usage")


def schedule_use(app_id: str) -> None:
    """Record the app's use on a worker thread if this process has not lately (never on the request path)."""
    if not throttle.due(app_id):
        return
    marker = object()
    _pending.add(marker)

    def _run() -> None:
        try:
            record_use_quietly(app_id)
        finally:
            _pending.discard(marker)

    _executor.submit(_run)


def wait_idle(timeout: float = 5.0) -> None:
    """Wait for scheduled usage writes to finish (tests, shutdown)."""
    deadline = time.monotonic() + timeout
    while _pending and time.monotonic() < deadline:
        time.sleep(0.01)
