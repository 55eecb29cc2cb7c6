"""The sunset job in-process: steps in order, each once; retries, zombies and the never-retired-while-live rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from orchestrator.catalog.lifecycle import Stage
from orchestrator.catalog.models import MicroApp
from orchestrator.credentials import service as credentials
from orchestrator.credentials.models import Credential, CredentialStatus
from orchestrator.db import session_scope
from orchestrator.sunset import flows as sunset
from orchestrator.sunset.models import ArchiveRecord, SunsetRun, SunsetStatus, SunsetStep
from orchestrator.timers.models import Deadline
from tests.helpers.timers import FakeProvider, add_credential, audit_actions

STEP_ACTIONS = ["sunset.freeze", "sunset.revoke", "sunset.archive", "sunset.retire"]


def _start(app_id: str, *, trigger: str = "manual") -> None:
    from orchestrator.catalog import service as catalog
    from orchestrator.catalog.lifecycle import Action
    from orchestrator.catalog.policy import get_policy

    with session_scope() as session:
        app = catalog.get_app(session, app_id)
        catalog.apply_action(session, app, Action.retire, actor="admin@example.com", reason="test", policy=get_policy())
        sunset.start_sunset(session, app, trigger=trigger, actor="admin@example.com", reason="no longer needed")


def _state(app_id: str) -> tuple[SunsetRun, MicroApp]:
    with session_scope(write=False) as session:
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app_id)).one()
        app = session.get(MicroApp, app_id)
        assert app is not None
        return run, app


def test_sunset_runs_every_step_once(app_factory: Any, timer_settings: dict[str, str], tmp_path: Path) -> None:
    """Freeze, revoke, archive and retire each run once, with an audit entry, and the app ends retired."""
    app = app_factory(stage=Stage.production, expires_at=None)
    logs = tmp_path / "app-logs" / app.id
    logs.mkdir(parents=True)
    (logs / "app.log").write_text("started\nserved 3 requests\n")
    fake = FakeProvider()
    first = add_credential(app.id)
    second = add_credential(app.id)
    _start(app.id)
    run = sunset.advance(app.id, providers=fake.providers)
    again = sunset.advance(app.id, providers=fake.providers)
    _run, stored = _state(app.id)
    assert run.status is SunsetStatus.done and again.status is SunsetStatus.done and run.step is SunsetStep.done
    assert stored.stage is Stage.retired
    actions = audit_actions(app.id)
    assert [a for a in actions if a.startswith("sunset.")] == ["sunset.started", *STEP_ACTIONS]
    assert actions.count("archive.created") == 1 and "lifecycle.complete_sunset" in actions
    assert sorted(fake.revoked) == sorted(_refs(first, second))
    with session_scope(write=False) as session:
        record = session.exec(select(ArchiveRecord).where(ArchiveRecord.app_id == app.id)).one()
        purge = session.exec(select(Deadline).where(Deadline.kind == "retention_purge")).one()
    assert record.manifest["counts"]["credentials"] == 2 and record.manifest["counts"]["log_files"] == 1
    assert purge.ref == str(record.id) and purge.due_at == record.retain_until


def _refs(*ids: int) -> list[str]:
    with session_scope(write=False) as session:
        return [c.external_ref for c in session.exec(select(Credential).where(Credential.id.in_(ids))).all()]  # type: ignore[union-attr]


def test_transient_failures_retry_then_zombie_blocks(app_factory: Any, timer_settings: dict[str, str]) -> None:
    """Revocation retries with backoff; after the policy's attempts the credential is a zombie and the run blocks."""
    from orchestrator.catalog.policy import get_policy

    app = app_factory(stage=Stage.production, expires_at=None)
    cred = add_credential(app.id)
    fake = FakeProvider(script=["transient"])
    _start(app.id)
    attempts = get_policy().sunset.revoke_max_attempts
    for _ in range(attempts - 1):
        with pytest.raises(sunset.RetryLater) as retry:
            sunset.advance(app.id, providers=fake.providers)
        assert 0 < retry.value.countdown <= get_policy().sunset.revoke_backoff_max_seconds * 1.2
    run = sunset.advance(app.id, providers=fake.providers)
    _run, stored = _state(app.id)
    assert run.status is SunsetStatus.blocked and run.step is SunsetStep.revoke
    assert stored.stage is Stage.sunsetting
    with session_scope(write=False) as session:
        credential = session.get(Credential, cred)
        assert credential is not None
        assert credential.status is CredentialStatus.zombie and credential.revoke_attempts == attempts
    actions = audit_actions(app.id)
    assert "credential.zombie" in actions and "sunset.it_alerted" in actions and "sunset.blocked" in actions
    # A human revokes it by hand; the resumed run then finishes.
    with session_scope() as session:
        credentials.force_revoked(session, cred, actor="it@example.com", reason="deleted in the admin console")
    done = sunset.advance(app.id, providers=fake.providers)
    assert done.status is SunsetStatus.done and _state(app.id)[1].stage is Stage.retired
    assert audit_actions(app.id).count("sunset.revoke") == 1


def test_never_retired_while_a_credential_is_live(app_factory: Any, timer_settings: dict[str, str]) -> None:
    """A credential that appears after the revoke step sends the run back to revoke before retiring."""
    app = app_factory(stage=Stage.production, expires_at=None)
    fake = FakeProvider()
    _start(app.id)
    with session_scope() as session:
        run = session.exec(select(SunsetRun).where(SunsetRun.app_id == app.id)).one()
        run.step = SunsetStep.retire
        run.steps = {"freeze": {}, "revoke": {}, "archive": {}}
        session.add(run)
    late = add_credential(app.id)
    done = sunset.advance(app.id, providers=fake.providers)
    assert done.status is SunsetStatus.done
    with session_scope(write=False) as session:
        credential = session.get(Credential, late)
        assert credential is not None and credential.status is CredentialStatus.revoked
    assert _state(app.id)[1].stage is Stage.retired


def test_crash_after_upload_leaves_no_orphan(app_factory: Any, timer_settings: dict[str, str], tmp_path: Path) -> None:
    """A crash between the archive upload and its record is resumed: the unrecorded object is removed."""
    from orchestrator.integrations import archive as backends

    app = app_factory(stage=Stage.production, expires_at=None)
    _start(app.id)
    original = backends.DirectoryStore.put
    calls = {"n": 0}

    def put_then_crash(self: Any, key: str, source: Path) -> str:
        uri = original(self, key, source)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt("simulated crash after upload")
        return uri

    backends.DirectoryStore.put = put_then_crash  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            sunset.advance(app.id, providers={})
        run = sunset.advance(app.id, providers={})
    finally:
        backends.DirectoryStore.put = original  # type: ignore[method-assign]
    assert run.status is SunsetStatus.done
    files = sorted(p.name for p in (tmp_path / "archive" / app.id).iterdir())
    with session_scope(write=False) as session:
        record = session.exec(select(ArchiveRecord).where(ArchiveRecord.app_id == app.id)).one()
    assert files == [record.key.split("/")[-1]]


def test_lapsed_credential_is_settled_before_retiring(app_factory: Any, timer_settings: dict[str, str]) -> None:
    """A credential still `live` in the ledger but past its expiry is recorded expired before the app retires."""
    from datetime import timedelta

    from orchestrator.clock import utcnow

    app = app_factory(stage=Stage.production, expires_at=None)
    fake = FakeProvider()
    lapsed = add_credential(app.id, expires_at=utcnow() - timedelta(minutes=5))
    _start(app.id)
    done = sunset.advance(app.id, providers=fake.providers)
    assert done.status is SunsetStatus.done and _state(app.id)[1].stage is Stage.retired
    with session_scope(write=False) as session:
        credential = session.get(Credential, lapsed)
        assert credential is not None and credential.status is CredentialStatus.expired
    assert fake.revoked == []  # nothing to ask the provider: the credential no longer works
