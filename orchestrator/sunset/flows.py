"""The sunset job: freeze → revoke → archive → retired, as resumable steps recorded in `sunset_run`.

Each step ends in one transaction that locks the run row, checks the run is still at that step,
records what the step did (plus an audit entry and the owner/approver notices) and moves the run on.
A crash anywhere therefore resumes at the first unfinished step, and a second worker running the
same run concurrently finds the step already done. Revocations are retried with a doubling
backoff; a credential that fails `policy.sunset.revoke_max_attempts` times becomes a zombie, the run
is blocked, the app stays `sunsetting` and IT is alerted. The app is never retired while any
credential is live or a zombie (the lifecycle guard `complete_sunset` also refuses).
"""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, update
from sqlmodel import Session, col, select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.catalog import service as catalog
from orchestrator.catalog.lifecycle import RETIRABLE_STAGES, Action, Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.catalog.policy import Policy, get_policy
from orchestrator.clock import as_utc, utcnow
from orchestrator.config import Settings, get_settings
from orchestrator.credentials import service as credentials
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.db import session_scope
from orchestrator.errors import IntegrationError, NotFound, TransientIntegrationError
from orchestrator.integrations.archive import store_from_settings
from orchestrator.logs import get_logger
from orchestrator.sunset import archive
from orchestrator.sunset.models import SunsetRun, SunsetStatus, SunsetStep
from orchestrator.sunset.notices import alert_it, tell
from orchestrator.tasks import TaskName, backoff_seconds, send, send_after_commit
from orchestrator.timers import service as deadlines
from orchestrator.timers.models import DeadlineKind

log = get_logger(__name__)
_NEXT = {
    SunsetStep.freeze: SunsetStep.revoke,
    SunsetStep.revoke: SunsetStep.archive,
    SunsetStep.archive: SunsetStep.retire,
    SunsetStep.retire: SunsetStep.done,
}


class RetryLater(Exception):
    """The run cannot go on yet (a revocation failed transiently); try again in `countdown` seconds."""

    def __init__(self, message: str, *, countdown: float) -> None:
        super().__init__(message)
        self.countdown = countdown


# ----------------------------------------------------------------------------- starting


def enqueue(app_ids: list[str]) -> None:
    """Send the sunset task for these apps (a failure is logged; the resume sweep retries)."""
    for app_id in app_ids:
        try:
            send(TaskName.run_sunset, app_id)
        except Exception as exc:
            log.error("enqueueing a sunset run failed", app_id=app_id, error=str(exc))


def start_sunset(
    session: Session, app: MicroApp, *, trigger: str, actor: str, reason: str, enqueue: bool = True
) -> tuple[SunsetRun, bool]:
    """The app's sunset run, created if it has none; True when new.

    Unless `enqueue` is False (the caller runs it itself), a worker is asked to run it after commit.
    """
    run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app.id)).first()
    if run is None:
        run = SunsetRun(app_id=app.id, trigger=trigger, actor=actor, reason=reason)
        session.add(run)
        session.flush()
        audit.record(
            session, actor=actor, action=AuditAction.sunset_started, app_id=app.id, reason=reason,
            data={"run_id": run.id, "trigger": trigger, "stage": app.stage.value},
        )  # fmt: skip
        new = True
    else:
        new = False
    if enqueue and run.status is not SunsetStatus.done:
        send_after_commit(session, TaskName.run_sunset, app.id)
    return run, new


def stalled_runs(session: Session, *, now: datetime, lease: timedelta, blocked_idle: timedelta) -> list[str]:
    """Apps whose unfinished run nobody is working on: a running run whose lease expired (its worker
    died) or that was never picked up within `lease` (a lost message), and a blocked run idle for
    `blocked_idle`. A run under a live lease is never listed, however long it runs."""
    lease_until = col(SunsetRun.lease_until)
    running = and_(
        col(SunsetRun.status) == SunsetStatus.running,
        or_(lease_until < now, and_(lease_until.is_(None), col(SunsetRun.updated_at) < now - lease)),
    )
    blocked = and_(col(SunsetRun.status) == SunsetStatus.blocked, col(SunsetRun.updated_at) < now - blocked_idle)
    return list(session.exec(select(SunsetRun.app_id).where(or_(running, blocked))).all())


class _Lease:
    """A worker's lease on a run, renewed by a background thread every third of its length while held."""

    def __init__(self, app_id: str, seconds: float) -> None:
        self.app_id, self.seconds = app_id, seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"sunset-lease-{app_id}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds)

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                _set_lease(self.app_id, utcnow() + timedelta(seconds=self.seconds))
            except Exception as exc:  # the next renewal tries again; the lease is three times as long
                log.warning("could not renew a sunset lease", app_id=self.app_id, error=str(exc)[:300])


def _set_lease(app_id: str, until: datetime | None) -> None:
    with session_scope() as session:
        session.execute(update(SunsetRun).where(col(SunsetRun.app_id) == app_id).values(lease_until=until))


# ----------------------------------------------------------------------------- running


def _locked_run(session: Session, app_id: str) -> SunsetRun:
    query = select(SunsetRun).where(SunsetRun.app_id == app_id).with_for_update()
    run = session.exec(query.execution_options(populate_existing=True)).first()
    if run is None:
        raise NotFound(f"no sunset run for app {app_id!r}")
    return run


def _complete(session: Session, run: SunsetRun, step: SunsetStep, record: dict[str, Any]) -> None:
    """Move the run past `step` and write the step's audit entry (the caller holds the row lock)."""
    now = utcnow()
    run.steps = {**run.steps, step.value: {"done_at": now.isoformat(), **record}}
    run.step = _NEXT[step]
    run.status = SunsetStatus.done if run.step is SunsetStep.done else SunsetStatus.running
    run.finished_at = now if run.step is SunsetStep.done else None
    run.updated_at = now
    run.last_error = None
    session.add(run)
    audit.record(
        session, actor=run.actor, action=AuditAction(f"sunset.{step.value}"), app_id=run.app_id, reason=run.reason,
        data={"run_id": run.id, **record},
    )  # fmt: skip


def advance(
    app_id: str,
    *,
    providers: Any = None,
    policy: Policy | None = None,
    settings: Settings | None = None,
    respect_lease: bool = False,
) -> SunsetRun:
    """Run the app's sunset from its first unfinished step; returns the run (done, or blocked).

    While it runs, the caller holds the run's lease (renewed in the background). With
    `respect_lease` (a first delivery, which may be a duplicate or a redelivery of a message a live
    worker holds) a run under someone else's live lease is left alone; the scheduled retry of a
    run (whose lease covers its wait) passes False.
    """
    policy = policy or get_policy()
    settings = settings or get_settings()
    lease = settings.sunset_lease_seconds
    with session_scope() as session:
        run = _locked_run(session, app_id)
        now = utcnow()
        leased = run.lease_until is not None and as_utc(run.lease_until) > now
        if respect_lease and run.status is SunsetStatus.running and leased:
            # Another worker runs it now (or its retry is scheduled): never run live work twice.
            log.info("sunset run is leased to another worker; skipped", app_id=app_id)
            return run
        run.attempts += 1
        run.updated_at = now
        run.lease_until = now + timedelta(seconds=lease)
        session.add(run)
    try:
        with _Lease(app_id, lease):
            run = _advance(app_id, providers=providers, policy=policy, settings=settings)
    except RetryLater as exc:
        # The retry is scheduled: the sweep leaves the run alone until it is due (plus a lease).
        _set_lease(app_id, utcnow() + timedelta(seconds=exc.countdown + lease))
        raise
    except BaseException:
        _set_lease(app_id, None)  # the failure is recorded; the sweep may resume it after a lease
        raise
    _set_lease(app_id, None)
    return run


def _advance(app_id: str, *, providers: Any, policy: Policy, settings: Settings) -> SunsetRun:
    for _ in range(12):  # steps can go back once (revoke ← retire); this bounds a pathological loop
        with session_scope(write=False) as session:
            run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).one()
        if run.status is SunsetStatus.done:
            return run
        if run.step is SunsetStep.freeze:
            _freeze(app_id, policy)
        elif run.step is SunsetStep.revoke:
            if not _revoke(app_id, policy, providers):
                with session_scope(write=False) as session:
                    return session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).one()  # blocked
        elif run.step is SunsetStep.archive:
            _archive(app_id, policy, settings)
        elif run.step is SunsetStep.retire:
            _retire(app_id, policy)
        if settings.sunset_step_pause_seconds:
            time.sleep(settings.sunset_step_pause_seconds)
    raise RetryLater(f"sunset of {app_id} did not settle", countdown=60)


def _freeze(app_id: str, policy: Policy) -> None:
    with session_scope() as session:
        run = _locked_run(session, app_id)
        if run.step is not SunsetStep.freeze:
            return
        app = catalog.get_app(session, app_id)
        before = app.stage
        if app.stage in (Stage.expiring, Stage.suspended):
            catalog.apply_action(session, app, Action.expire, actor=run.actor, reason=run.reason, policy=policy)
        elif app.stage in RETIRABLE_STAGES:
            catalog.apply_action(session, app, Action.retire, actor=run.actor, reason=run.reason, policy=policy)
        # In sunsetting no credential can be issued and every lifecycle timer is cancelled.
        cancelled = deadlines.reschedule_app(session, app, policy).cancelled
        _complete(session, run, SunsetStep.freeze, {"from_stage": before.value, "cancelled_deadlines": len(cancelled)})
        tell(session, app, policy, "freeze", f"{app.name} is being retired: no new credentials can be issued.")


def _backoff(policy: Policy, attempts: int) -> float:
    return backoff_seconds(attempts, policy.sunset.revoke_backoff_seconds, policy.sunset.revoke_backoff_max_seconds)


def _revoke_one(app: MicroApp, credential_id: int, policy: Policy, providers: Any, actor: str) -> int | None:
    """Revoke one credential; the attempt count when it should be retried later, else None."""
    with session_scope() as session:
        try:
            credentials.revoke_credential(
                session, credential_id, actor=actor, reason=f"sunset of {app.id}", providers=providers
            )
            return None
        except IntegrationError as exc:
            # revoke_credential committed the attempt count before raising.
            credential = session.get(Credential, credential_id)
            assert credential is not None
            retryable = isinstance(exc, TransientIntegrationError)
            if retryable and credential.revoke_attempts < policy.sunset.revoke_max_attempts:
                return credential.revoke_attempts
            why = f"not revoked after {credential.revoke_attempts} attempt(s): {exc.message}"
            credentials.mark_zombie(session, credential_id, reason=why, actor=actor)
            alert_it(
                session,
                app,
                policy,
                f"credential {credential_id} ({credential.provider}) of {app.id} is a zombie: {why}",
                key=f"zombie:{credential_id}",
            )
            return None


def _revoke(app_id: str, policy: Policy, providers: Any) -> bool:
    """Revoke every live credential; False when the run is blocked on a zombie."""
    with session_scope(write=False) as session:
        app = catalog.get_app(session, app_id)
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).one()
        pending = [c.id for c in _unsettled(session, app_id) if c.id is not None]
    retry_attempts = [a for cid in pending if (a := _revoke_one(app, cid, policy, providers, run.actor)) is not None]
    with session_scope() as session:
        run = _locked_run(session, app_id)
        if run.step is not SunsetStep.revoke:
            return True
        live = _unsettled(session, app_id)
        zombies = _zombies(session, app_id)
        if retry_attempts or live:
            run.last_error = f"{len(retry_attempts) or len(live)} credential(s) not revoked yet; retrying"
            run.updated_at = utcnow()
            session.add(run)
        elif zombies:
            if run.status is not SunsetStatus.blocked:
                run.status = SunsetStatus.blocked
                run.last_error = f"zombie credential(s) {[z.id for z in zombies]}: revoke by hand with --force"
                audit.record(
                    session, actor=run.actor, action=AuditAction.sunset_blocked, app_id=app_id, reason=run.last_error,
                    data={"run_id": run.id, "zombies": [z.id for z in zombies]},
                )  # fmt: skip
            run.updated_at = utcnow()
            session.add(run)
            return False
        else:
            revoked = session.exec(
                select(Credential.id).where(Credential.app_id == app_id, Credential.status == CredentialStatus.revoked)
            ).all()
            _complete(session, run, SunsetStep.revoke, {"revoked": len(revoked), "credential_ids": list(revoked)})
            tell(session, app, policy, "revoke", f"Every credential of {app.name} has been revoked ({len(revoked)}).")
            return True
    raise RetryLater(run.last_error or "revocation pending", countdown=_backoff(policy, max(retry_attempts, default=1)))


def _unsettled(session: Session, app_id: str) -> list[Credential]:
    # Status `live` whatever `expires_at` says: `revoke_credential` settles a lapsed one as expired
    # (no provider call), so the ledger of a retired app never still lists a credential as live.
    query = select(Credential).where(Credential.app_id == app_id, Credential.status == CredentialStatus.live)
    return list(session.exec(query.order_by(col(Credential.id))).all())


def _zombies(session: Session, app_id: str) -> list[Credential]:
    query = select(Credential).where(Credential.app_id == app_id, Credential.status == CredentialStatus.zombie)
    return list(session.exec(query).all())


def _archive(app_id: str, policy: Policy, settings: Settings) -> None:
    store = store_from_settings()
    with session_scope() as session:
        run = _locked_run(session, app_id)
        if run.step is not SunsetStep.archive:
            return
        leftover = run.steps.get("archive_pending")
        key = f"{app_id}/{app_id}-sunset-{run.id}-{uuid.uuid4().hex[:8]}.tar.gz"
        # Remember the key before uploading, so a crash after the upload leaves no untracked object.
        run.steps = {**run.steps, "archive_pending": key}
        session.add(run)
    if leftover:
        _delete_quietly(store, leftover)
    with tempfile.TemporaryDirectory(prefix="sunset-archive-") as tmp:
        with session_scope(write=False) as session:
            app = catalog.get_app(session, app_id)
            built = archive.build(
                session, app, actor=run.actor, reason=run.reason, log_root=settings.log_source_dir,
                workdir=Path(tmp), now=utcnow(),
            )  # fmt: skip
        uri = store.put(key, built.path)
    with session_scope() as session:
        run = _locked_run(session, app_id)
        if run.step is not SunsetStep.archive:
            _delete_quietly(store, key)  # another worker archived first
            return
        app = catalog.get_app(session, app_id)
        retain_until = utcnow() + timedelta(days=policy.for_class(app.data_class).log_retention_days)
        row = archive.record(
            session, app, built, key=key, uri=uri, actor=run.actor, reason=run.reason, retain_until=retain_until
        )
        deadlines.schedule(
            session, kind=DeadlineKind.retention_purge, due_at=retain_until, app_id=app_id,
            ref=str(row.id), payload={"archive_id": row.id},
        )  # fmt: skip
        run.archive_id = row.id
        run.steps = {k: v for k, v in run.steps.items() if k != "archive_pending"}
        _complete(session, run, SunsetStep.archive, {"archive_id": row.id, "uri": uri, "sha256": built.sha256})
        tell(
            session,
            app,
            policy,
            "archive",
            f"{app.name} has been archived to {uri} (kept until {retain_until:%Y-%m-%d}).",
        )


def _delete_quietly(store: Any, key: str) -> None:
    try:
        store.delete(key)
    except Exception as exc:  # an orphan object is harmless; the record is what counts
        log.warning("could not delete an unrecorded archive object", key=key, error=str(exc))


def _retire(app_id: str, policy: Policy) -> None:
    with session_scope() as session:
        run = _locked_run(session, app_id)
        if run.step is not SunsetStep.retire:
            return
        app = catalog.get_app(session, app_id)
        holding = len(_unsettled(session, app_id)) + len(_zombies(session, app_id))
        if holding:
            # Something was issued or resurrected since the revoke step: go back and revoke it.
            run.step = SunsetStep.revoke
            run.updated_at = utcnow()
            session.add(run)
            return
        if app.stage is Stage.sunsetting:
            catalog.apply_action(
                session, app, Action.complete_sunset, actor=run.actor, reason=run.reason, policy=policy,
                live_credentials=holding,
            )  # fmt: skip
        _complete(session, run, SunsetStep.retire, {"stage": app.stage.value})
        tell(session, app, policy, "retire", f"{app.name} is retired: credentials revoked, records archived.")
