"""The scheduler's periodic jobs, declared in one list (ids are kebab-case and stable).

Each job names a method of `schedules.engine.TimerEngine` and the setting holding its interval, or the
policy field holding it in hours (a job whose interval is 0 is off). The per-deadline wake-ups are not
listed here: the engine adds them as one-shot jobs per slot. Every sweep that re-publishes lost work is
declared here and runs on the leader only.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    """A periodic job of the active scheduler."""

    id: str
    method: str
    interval_setting: str
    run_at_start: bool = False
    # A policy field in hours that sets the interval instead of the setting (issue 17's daily sync).
    interval_policy_hours: str | None = None


JOBS: list[Job] = [
    # New rows since the last look; with Redis the nudge usually got there first.
    Job(id="poll-new-deadlines", method="poll_new", interval_setting="scheduler_poll_seconds"),
    # Deadlines that entered the rolling horizon.
    Job(id="roll-horizon", method="roll", interval_setting="scheduler_reload_seconds"),
    # From scratch: drops stale timers and catches rows committed out of id order (PostgreSQL).
    Job(id="rebuild-timers", method="rebuild", interval_setting="scheduler_rebuild_seconds"),
    # Anything overdue: catch-up after downtime, lost messages, rows inserted already due.
    Job(id="sweep-overdue", method="sweep", interval_setting="scheduler_sweep_seconds", run_at_start=True),
    # Sunset runs that stopped moving (crashed worker, lost message).
    Job(id="resume-stalled-sunsets", method="resume_sunsets", interval_setting="sunset_resume_seconds"),
    # Notifications and Slack clicks whose Celery message was lost.
    Job(id="sweep-notifications", method="sweep_notifications", interval_setting="notification_sweep_seconds"),
    # The outbox relay: events committed but never published, or published and lost (plus the
    # GitHub redelivery job). `orchestrator relay` runs the same pass in the foreground.
    Job(id="relay-outbox", method="relay", interval_setting="relay_interval_seconds"),
    # Reviews whose `workers.run_review` message was lost.
    Job(id="sweep-reviews", method="sweep_reviews", interval_setting="review_sweep_interval_seconds"),
    # A signed checkpoint of the audit chain's head in the archive store (skipped when it did not move).
    Job(id="audit-checkpoint", method="audit_checkpoint", interval_setting="audit_checkpoint_seconds"),
    # The invariant and operations gauges, into Redis for every API process's /metrics (the rules walk
    # the audit chain: too costly per scrape).
    Job(
        id="refresh-health-metrics",
        method="refresh_health",
        interval_setting="health_metrics_seconds",
        run_at_start=True,
    ),
    # Catalogued people the identity provider no longer lists as active (missed hooks): owner.left.
    Job(id="reconcile-idp", method="reconcile_idp", interval_setting="", interval_policy_hours="idp_reconcile_hours"),
    # The OSV advisory sets (orchestrator advisories sync), every policy `advisories_sync_hours` (24).
    Job(
        id="sync-advisories",
        method="sync_advisories",
        interval_setting="",
        interval_policy_hours="advisories_sync_hours",
    ),
    # The KPI gauges, into Redis for every API process's /metrics (a report over the window: not per scrape).
    Job(id="refresh-kpi-metrics", method="refresh_kpis", interval_setting="kpi_metrics_seconds", run_at_start=True),
]
