"""The leader's `audit-checkpoint` job: it signs the audit chain's head into the archive store on a timer."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from bench.harness import wait_until
from orchestrator.audit import checkpoints
from orchestrator.audit.models import AuditCheckpoint
from orchestrator.config import Settings, get_settings
from orchestrator.db import session_scope
from schedules.engine import TimerEngine
from schedules.jobs import JOBS
from tests.audit.helpers import append, configure, latest_document, sql


@pytest.fixture
def archive(db_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory archive store and a checkpoint key; Redis set as the scheduler's, as in production."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    path = tmp_path / "archive"
    configure(monkeypatch, path)
    return path


def engine(**overrides: Any) -> TimerEngine:
    """A timer engine on the configured settings (not started unless the test starts it)."""
    settings = get_settings().model_copy(update=overrides) if overrides else get_settings()
    return TimerEngine(settings, lambda ids: None, stop=threading.Event())


def rows() -> list[int]:
    """The seq of every checkpoint row, oldest first."""
    with session_scope(write=False) as session:
        return [row.seq for row in session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.id))).all()]


def test_the_job_is_declared() -> None:
    """The job runs `audit_checkpoint` every AUDIT_CHECKPOINT_SECONDS (300 by default)."""
    job = {j.id: j for j in JOBS}["audit-checkpoint"]
    assert (job.method, job.interval_setting) == ("audit_checkpoint", "audit_checkpoint_seconds")
    assert callable(getattr(TimerEngine, job.method))
    assert Settings().audit_checkpoint_seconds == 300


def test_the_job_writes_a_checkpoint_and_skips_an_unmoved_head(archive: Path, db_url: str) -> None:
    """One pass checkpoints the head; the next, with no new entry, writes nothing; a cut tail is refused."""
    append(3)
    timer = engine()
    try:
        first = timer.audit_checkpoint()
        assert first is not None and first.checkpoint is not None and first.skipped is None
        assert latest_document(archive)["seq"] == 3
        second = timer.audit_checkpoint()
        assert second is not None and second.skipped == "the head did not move since the last checkpoint"
        append(1, start=4)
        third = timer.audit_checkpoint()
        assert third is not None and third.checkpoint is not None and third.checkpoint.seq == 4
        assert rows() == [3, 4]
        sql(db_url, "DELETE FROM audit_entry WHERE seq = 4")
        refused = timer.audit_checkpoint()
        assert refused is not None and refused.refused and "removed from its tail" in refused.refused
        assert rows() == [3, 4] and latest_document(archive)["seq"] == 4
    finally:
        timer.shutdown()


def test_the_running_scheduler_checkpoints_on_its_timer(archive: Path) -> None:
    """Started with a short interval, the engine's own timer writes the checkpoint."""
    append(2)
    timer = engine(audit_checkpoint_seconds=0.3)
    timer.start()
    try:
        wait_until(lambda: (archive / checkpoints.LATEST_KEY).exists(), timeout=15, what="a checkpoint in the store")
        assert latest_document(archive)["seq"] == 2
    finally:
        timer.shutdown()


def test_a_failing_store_is_logged_not_raised(archive: Path, tmp_path: Path) -> None:
    """When the store cannot be written the job logs and returns; the next pass tries again."""
    append(1)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    timer = engine(archive_url=str(blocker / "archive"))
    try:
        assert timer.audit_checkpoint() is None
        assert rows() == []
    finally:
        timer.shutdown()
