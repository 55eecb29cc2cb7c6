"""The relay: publish again every event that was committed but not handled in time.

- `pending` for RELAY_PENDING_AFTER_SECONDS: never reached the broker (it was down, or the process
  died between commit and publish) — or, rarely, sent by a process that died before its publisher
  marked it `enqueued` (a second after sending, see `orchestrator.events.publisher`): one more
  message, which the runner turns into a no-op;
- `enqueued`/`handling` for RELAY_STALE_AFTER_SECONDS since it was last published: the broker lost
  it (Redis restarted without persistence) or a worker died with it;
- with Redis, `enqueued`/`handling` for RELAY_LEASE_STALE_SECONDS since it was last published and
  no worker holds its in-flight lease (`orchestrator.events.leases`): a worker died with it, or the
  broker lost it, found within a minute. A queue backlog longer than that window makes the relay
  publish queued events once more; the runner turns each duplicate into a no-op.

Rows are claimed in one transaction that moves their `published_at` forward (a lease, so the next
pass leaves them alone), with `FOR UPDATE SKIP LOCKED` on PostgreSQL — several relays share the
work and skip rows a handler holds locked. SQLite has no SKIP LOCKED: there a file lock next to the
database keeps exactly one relay active; the others stand by. Publishing happens after the claim
commits; a crash in between means one more publish later, never a loss.

It runs as a job of the scheduler's leader (`schedules.jobs`, every RELAY_INTERVAL_SECONDS), or in
the foreground with `orchestrator relay`. The same pass runs the GitHub redelivery job.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import IO

import redis
from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from orchestrator.clock import utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.db import session_scope
from orchestrator.events import leases
from orchestrator.events.models import Event, EventStatus
from orchestrator.logs import get_logger

log = get_logger(__name__)


def claim_due(session: Session, settings: Settings) -> list[str]:
    """Ids of events due for a re-publish, leased to the caller by moving `published_at` to now."""
    now = utcnow()
    last_sent = func.coalesce(Event.published_at, Event.received_at)
    in_flight = col(Event.status).in_([EventStatus.enqueued, EventStatus.handling])
    stale = and_(in_flight, last_sent < now - timedelta(seconds=settings.relay_stale_after_seconds))
    due = or_(
        and_(
            col(Event.status) == EventStatus.pending,
            last_sent < now - timedelta(seconds=settings.relay_pending_after_seconds),
        ),
        stale,
    )
    lease_window = settings.relay_lease_stale_seconds
    use_leases = settings.effective_redis_url is not None and lease_window < settings.relay_stale_after_seconds
    if use_leases:
        due = or_(due, and_(in_flight, last_sent < now - timedelta(seconds=lease_window)))
    query = (
        select(Event.id, stale)
        .where(due)
        .order_by(col(Event.received_at))
        .limit(settings.relay_batch_size)
        .with_for_update(skip_locked=True)
    )
    rows = list(session.exec(query).all())
    ids = [event_id for event_id, _ in rows]
    if use_leases:
        ids = _without_live_leases(rows, settings)
    if ids:
        session.execute(update(Event).where(col(Event.id).in_(ids)).values(published_at=now))
    return ids


def _without_live_leases(rows: list[tuple[str, bool]], settings: Settings) -> list[str]:
    """The rows to publish: those past the fixed stale window (or pending), and the others no worker holds."""
    early = [event_id for event_id, is_stale in rows if not is_stale]
    try:
        live = leases.leased(early, settings)
    except redis.RedisError as exc:  # no answer about leases: only the fixed windows apply
        log.warning("could not read event leases", error=str(exc)[:300])
        live = set(early)
    return [event_id for event_id, _ in rows if event_id not in live]


def republish_due(settings: Settings | None = None) -> int:
    """Publish every due event, batch by batch; the number published (stops at a broker failure)."""
    from orchestrator.events.publisher import publish_now

    settings = settings or get_settings()
    total = 0
    while True:
        with session_scope() as session:
            ids = claim_due(session, settings)
        if not ids:
            return total
        try:
            total += len(publish_now(ids, suspect=True))
        except Exception as exc:  # the lease expires and a later pass tries again
            log.warning("relay could not publish", events=len(ids), error=str(exc)[:300])
            return total
        log.info("relay published events", events=len(ids))
        if len(ids) < settings.relay_batch_size:
            return total


class SingleRelayLock:
    """On SQLite, an exclusive file lock beside the database: one active relay per database file."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        self.path = f"{url.database}.relay.lock" if url.get_backend_name() == "sqlite" and url.database else None
        self._file: IO[str] | None = None

    def acquire(self) -> bool:
        """True when this process holds the lock (always true when no lock is needed)."""
        if self.path is None or self._file is not None:
            return True
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open for as long as the lock is held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        self._file = handle
        return True

    def release(self) -> None:
        """Give the lock up (closing the file releases it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class Relay:
    """The relay loop; `tick()` is one pass, `run()` loops until `stop` is set."""

    settings: Settings
    stop: threading.Event

    def __post_init__(self) -> None:
        self._lock = SingleRelayLock(self.settings.database_url)
        self._next_redelivery = time.monotonic() + min(30.0, self.settings.github_redelivery_interval_seconds)
        self._standby_logged = False

    def tick(self) -> int:
        """One pass: re-publish due events, then run the GitHub redelivery job when it is due."""
        if not self._lock.acquire():
            if not self._standby_logged:
                log.info("another relay is active for this database; standing by", lock=self._lock.path)
                self._standby_logged = True
            return 0
        published = republish_due(self.settings)
        interval = self.settings.github_redelivery_interval_seconds
        if interval > 0 and time.monotonic() >= self._next_redelivery:
            self._next_redelivery = time.monotonic() + interval
            from orchestrator.events.redelivery import redeliver_failed

            try:
                redeliver_failed(self.settings)
            except Exception as exc:  # a GitHub outage must not stop the relay
                log.warning("github redelivery job failed", error=str(exc)[:300])
        return published

    def release(self) -> None:
        """Let another relay take over (gives up the SQLite file lock, if held)."""
        self._lock.release()

    def run(self) -> None:
        """Loop until `stop` is set; errors are logged and the loop goes on."""
        log.info("relay started", pid=os.getpid(), interval=self.settings.relay_interval_seconds)
        try:
            while not self.stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # e.g. the database is briefly unreachable
                    log.warning("relay pass failed", error=str(exc)[:300])
                self.stop.wait(self.settings.relay_interval_seconds)
        finally:
            self._lock.release()
            log.info("relay stopped")
