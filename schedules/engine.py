"""The timer engine of the active scheduler: deadlines due soon → exact APScheduler wake-ups.

Only deadlines due within a rolling horizon (SCHEDULER_HORIZON_SECONDS) are held in memory, and
they are grouped into slots SCHEDULER_TIMER_RESOLUTION_MS wide, one APScheduler `date` job per
slot, so 100,000 deadlines due in the next minutes cost a few thousand jobs, not 100,000. A slot
fires at the end of its width (never early) and enqueues one Celery task per batch of ids; the
task marks each deadline fired with a compare-and-set, so an extra enqueue is harmless.

The in-memory index is refreshed by the periodic jobs in `schedules.jobs` (poll for new rows, roll
the horizon forward, rebuild from scratch) and by nudges; the overdue sweep catches up whatever was
missed, oldest first and at a bounded rate. The MemoryJobStore is private to this process and
thrown away on step-down: a job store shared between schedulers makes them run each other's jobs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from orchestrator.audit import checkpoints as audit_checkpoints
from orchestrator.config import Settings
from orchestrator.events.relay import Relay
from orchestrator.logs import get_logger
from orchestrator.reviews import publish as reviews_publish
from orchestrator.tasks import TaskName, send
from schedules import loader
from schedules.jobs import JOBS, Job

log = get_logger(__name__)

Dispatch = Callable[[list[int]], None]


class TimerEngine:
    """Holds the in-memory timers of one leadership term and the APScheduler that runs them."""

    def __init__(self, settings: Settings, dispatch: Dispatch, *, stop: threading.Event) -> None:
        self.settings = settings
        self._dispatch = dispatch
        self._stop = stop
        self._lock = threading.Lock()  # guards the in-memory index below
        self._loading = threading.Lock()  # one loader at a time (poll, roll, rebuild, nudge run in a pool)
        self._resolution_ms = settings.scheduler_timer_resolution_ms
        self._due: dict[int, int] = {}  # deadline id → slot (ms since epoch)
        self._slots: dict[int, set[int]] = {}  # slot → deadline ids
        self._dispatched: dict[int, float] = {}  # deadline id → monotonic time it was enqueued
        self._loaded_until = 0.0
        self._max_id = 0
        self._relay = Relay(settings, stop)
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(4)},
            # Under APScheduler's defaults a one-shot job that misses its time is deleted; never skip one.
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Load the horizon from the database, then start the periodic jobs and the timers."""
        self.rebuild()
        now = datetime.now(UTC)
        for job in JOBS:
            interval = job_interval_seconds(job, self.settings)
            if interval <= 0:
                continue  # turned off
            # Passing next_run_time=None would add the job paused, so it is only passed to run now.
            first = {"next_run_time": now} if job.run_at_start else {}
            self.scheduler.add_job(
                getattr(self, job.method),
                IntervalTrigger(seconds=interval, timezone=UTC),
                id=job.id,
                name=job.id,
                replace_existing=True,
                **first,
            )
        self.scheduler.start()

    def shutdown(self) -> None:
        """Stop every timer; what they held stays pending in the database for the next leader."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        self._relay.release()

    @property
    def timers(self) -> int:
        """How many deadlines currently have an in-memory wake-up."""
        return len(self._due)

    # ------------------------------------------------------------------ loading

    def rebuild(self) -> None:
        """Replace the in-memory timers with every pending deadline due within the horizon."""
        with self._loading:
            self._rebuild()

    def _rebuild(self) -> None:
        started = time.monotonic()
        top = loader.max_id()
        now = time.time()
        until = now + self.settings.scheduler_horizon_seconds
        # Overdue rows are left to the sweep, which catches up at a bounded rate, oldest first.
        pairs = loader.window(now, until)
        with self._lock:
            old_slots = set(self._slots)
            self._due.clear()
            self._slots.clear()
            self._loaded_until = until
            self._max_id = max(self._max_id, top)
        self._add(pairs)
        for slot in old_slots - set(self._slots):
            self._remove_job(slot)
        log.info(
            "timers rebuilt",
            timers=len(pairs),
            slots=len(self._slots),
            seconds=round(time.monotonic() - started, 3),
        )

    def poll_new(self) -> None:
        """Pick up deadlines inserted since the last look (the embedded stand-in for a nudge)."""
        with self._loading:
            top = loader.max_id()
            if top <= self._max_id:
                return
            pairs = loader.newer_than(self._max_id, top, self._loaded_until)
            self._max_id = top
            self._add(pairs)

    def roll(self) -> None:
        """Move the horizon forward and load the deadlines that entered it."""
        with self._loading:
            until = time.time() + self.settings.scheduler_horizon_seconds
            pairs = loader.window(self._loaded_until, until)
            self._loaded_until = until
            self._add(pairs)

    def on_nudge(self, added: Sequence[int], cancelled: Sequence[int]) -> None:
        """React to a writer's nudge: drop cancelled timers, load added ones due within the horizon."""
        if cancelled:
            with self._lock:
                for deadline_id in cancelled:
                    slot = self._due.pop(deadline_id, None)
                    if slot is not None:
                        self._slots.get(slot, set()).discard(deadline_id)
        if added:
            with self._loading:
                self._add(loader.by_ids(list(added), self._loaded_until))

    def _slot_of(self, due: float) -> int:
        # Rounded up so that a wake-up is never earlier than the deadline it serves.
        return math.ceil(due * 1000 / self._resolution_ms) * self._resolution_ms

    def _add(self, pairs: Sequence[tuple[int, float]]) -> None:
        new_slots: list[int] = []
        with self._lock:
            for deadline_id, due in pairs:
                slot = self._slot_of(due)
                old = self._due.get(deadline_id)
                if old == slot:
                    continue
                if old is not None:
                    self._slots.get(old, set()).discard(deadline_id)
                self._due[deadline_id] = slot
                ids = self._slots.get(slot)
                if ids is None:
                    self._slots[slot] = {deadline_id}
                    new_slots.append(slot)
                else:
                    ids.add(deadline_id)
        for slot in new_slots:
            self.scheduler.add_job(
                self.fire_slot,
                DateTrigger(run_date=datetime.fromtimestamp(slot / 1000, UTC)),
                args=[slot],
                id=f"slot-{slot}",
                replace_existing=True,
            )

    def _remove_job(self, slot: int) -> None:
        try:
            self.scheduler.remove_job(f"slot-{slot}")
        except Exception:  # already ran or never added: nothing to remove
            pass

    # ------------------------------------------------------------------ firing

    def fire_slot(self, slot: int) -> None:
        """A wake-up: enqueue the deadlines of this slot (the task marks each fired exactly once)."""
        now = time.monotonic()
        with self._lock:
            ids = self._slots.pop(slot, set())
            batch = []
            for deadline_id in sorted(ids):
                self._due.pop(deadline_id, None)
                if not self._recently_sent(deadline_id, now):
                    self._dispatched[deadline_id] = now
                    batch.append(deadline_id)
        self._send(batch)

    def _recently_sent(self, deadline_id: int, now_mono: float) -> bool:
        sent_at = self._dispatched.get(deadline_id)
        return sent_at is not None and now_mono - sent_at <= self.settings.scheduler_redispatch_seconds

    def _send(self, ids: list[int]) -> int:
        size = self.settings.scheduler_batch_size
        sent = 0
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            try:
                self._dispatch(chunk)
                sent += len(chunk)
            except Exception as exc:
                # Forget them so the sweep tries again; the rows are still pending in the database.
                with self._lock:
                    for deadline_id in ids[start:]:
                        self._dispatched.pop(deadline_id, None)
                log.error("enqueueing fired deadlines failed", error=str(exc), deadlines=len(ids) - start)
                break
        return sent

    def sweep(self) -> None:
        """Enqueue overdue deadlines nobody enqueued yet, oldest first, at most SCHEDULER_CATCHUP_RATE/s."""
        started = time.monotonic()
        self._prune_dispatched(started)
        grace = max(2.0, 2 * self._resolution_ms / 1000)
        rate = self.settings.scheduler_catchup_rate
        cursor: tuple[int, datetime] | None = None
        total = 0
        while not self._stop.is_set():
            page = loader.overdue(time.time(), after=cursor, limit=1000)
            if not page:
                break
            cursor = page[-1]
            batch = self._claim_overdue(page, grace)
            for start in range(0, len(batch), self.settings.scheduler_batch_size):
                chunk = batch[start : start + self.settings.scheduler_batch_size]
                total += self._send(chunk)
                # Pace the catch-up so a long outage does not flood the workers at once.
                if self._stop.wait(len(chunk) / rate):
                    break
        if total:
            log.info("overdue deadlines enqueued", deadlines=total, seconds=round(time.monotonic() - started, 3))

    def _claim_overdue(self, page: Sequence[tuple[int, datetime]], grace: float) -> list[int]:
        now_mono = time.monotonic()
        cutoff = (time.time() - grace) * 1000
        claimed = []
        with self._lock:
            for deadline_id, _due in page:
                if self._recently_sent(deadline_id, now_mono):
                    continue
                slot = self._due.get(deadline_id)
                if slot is not None:
                    if slot > cutoff:
                        continue  # its own wake-up is about to fire
                    self._due.pop(deadline_id, None)
                    self._slots.get(slot, set()).discard(deadline_id)
                self._dispatched[deadline_id] = now_mono
                claimed.append(deadline_id)
        return claimed

    def _prune_dispatched(self, now_mono: float) -> None:
        limit = self.settings.scheduler_redispatch_seconds
        with self._lock:
            stale = [i for i, at in self._dispatched.items() if now_mono - at > limit]
            for deadline_id in stale:
                del self._dispatched[deadline_id]

    # ------------------------------------------------------------------ other periodic work

    def sweep_notifications(self) -> None:
        """Re-queue notifications and Slack clicks whose Celery message was lost."""
        try:
            send(TaskName.sweep_notifications)
        except Exception as exc:
            log.error("enqueueing the notification sweep failed", error=str(exc))

    def resume_sunsets(self) -> None:
        """Re-enqueue sunset runs that stalled (a lost message, a crashed worker)."""
        try:
            send(TaskName.resume_stalled_sunsets)
        except Exception as exc:
            log.error("enqueueing the sunset resume sweep failed", error=str(exc))

    def relay(self) -> None:
        """One pass of the outbox relay: publish again the events committed but not handled in time."""
        try:
            self._relay.tick()
        except Exception as exc:  # e.g. the database is briefly unreachable; the next pass retries
            log.warning("relay pass failed", error=str(exc)[:300])

    def sweep_reviews(self) -> None:
        """Publish again the reviews whose `workers.run_review` message looks lost."""
        try:
            reviews_publish.redrive_stale(self.settings)
        except Exception as exc:  # the next pass retries
            log.warning("review sweep failed", error=str(exc)[:300])

    def audit_checkpoint(self) -> audit_checkpoints.Written | None:
        """Sign the audit chain's head and put it in the archive store, unless it did not move."""
        try:
            written = audit_checkpoints.checkpoint_now(self.settings, actor="scheduler")
        except Exception as exc:  # store or database briefly unreachable, or a bad key: logged, retried next time
            log.error("audit checkpoint failed", error=str(exc)[:300])
            return None
        if written.refused:
            # Someone cut or rewrote the chain's tail: no checkpoint may paper over it.
            log.error("audit checkpoint refused", reason=written.refused)
        elif written.checkpoint is not None and written.skipped is None:
            log.info("audit checkpoint written", seq=written.checkpoint.seq, location=written.location)
        return written

    def reconcile_idp(self) -> None:
        """Report as left the catalogued people the identity provider no longer lists as active."""
        from orchestrator.identity.reconcile import reconcile_now

        try:
            outcome = reconcile_now(self.settings)
        except Exception as exc:  # database briefly unreachable: the next pass retries
            log.warning("idp reconciliation failed", error=str(exc)[:300])
            return
        if outcome is not None and outcome.refused is None:
            log.info("idp reconciled", left=len(outcome.left), listed_active=outcome.listed_active)

    def sync_advisories(self) -> None:
        """Refresh the OSV advisory sets; a failed download keeps the old set and is logged."""
        from orchestrator.reviews.advisories_sync import sync_advisories

        try:
            for outcome in sync_advisories(self.settings):
                log.info("advisory sync", **outcome.to_dict())
        except Exception as exc:  # a full disk or a bad data directory: logged, retried at the next interval
            log.error("advisory sync failed", error=str(exc)[:300])

    def refresh_health(self) -> None:
        """Compute the invariant and operations gauges and leave them in Redis for the API's /metrics."""
        url = self.settings.effective_redis_url
        if not url:
            return  # embedded setup: the API computes the gauges itself (orchestrator.http.health)
        try:
            refresh_health_snapshot(self.settings, url)
        except Exception as exc:  # the next pass retries; the snapshot lapses meanwhile and the API computes
            log.warning("health gauges refresh failed", error=str(exc)[:300])

    def refresh_kpis(self) -> None:
        """Compute the KPI gauges and leave them in Redis for the API's /metrics; keep the snapshot KPIs when due."""
        url = self.settings.effective_redis_url
        try:
            # Without Redis (embedded) the API computes its gauges itself; this pass still keeps the history.
            refresh_kpi_snapshot(self.settings, url)
        except Exception as exc:  # the next pass retries; the snapshot lapses meanwhile and the API computes
            log.warning("KPI gauges refresh failed", error=str(exc)[:300])


def job_interval_seconds(job: Job, settings: Settings) -> float:
    """A periodic job's interval: its policy field (hours) when it names one, else its setting (seconds)."""
    if job.interval_policy_hours:
        from orchestrator.catalog.policy import get_policy

        return float(getattr(get_policy(), job.interval_policy_hours)) * 3600
    return float(getattr(settings, job.interval_setting))


def refresh_health_snapshot(settings: Settings, url: str) -> dict[str, Any]:
    """One refresh of the health snapshot in Redis (kept three intervals, so one missed pass is harmless)."""
    from orchestrator import invariants
    from orchestrator.db import session_scope

    with session_scope(write=False) as session:
        value = invariants.snapshot(session)
    invariants.publish_snapshot(url, value, ttl_seconds=3 * settings.health_metrics_seconds)
    return value


def refresh_kpi_snapshot(settings: Settings, url: str | None) -> dict[str, Any] | None:
    """One refresh of the KPI snapshot in Redis (kept three intervals, so one missed pass is harmless).

    When KPI_HISTORY_SECONDS have passed since the last kept one, the snapshot KPIs of this refresh are
    also kept in kpi_snapshot (orchestrator.kpis.snapshots), Redis or not. None when there was nothing to do.
    """
    from orchestrator.catalog.policy import get_policy
    from orchestrator.clock import utcnow
    from orchestrator.db import session_scope
    from orchestrator.kpis import gauges, snapshots

    with session_scope(write=False) as session:
        keep = snapshots.due(session, utcnow(), settings.kpi_history_seconds)
        if not url and not keep:
            return None
        value = gauges.snapshot(session, policy=get_policy(), window_days=settings.kpi_metrics_window_days)
    if keep:
        with session_scope() as session:  # `record` checks again: one row set per interval, whoever races
            snapshots.record(session, value, every_seconds=settings.kpi_history_seconds)
    if url:
        gauges.publish(url, value, ttl_seconds=3 * settings.kpi_metrics_seconds)
    return value
