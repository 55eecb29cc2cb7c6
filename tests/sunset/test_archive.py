"""Archives: tar.gz + manifest to a directory or S3 (moto server), verify, legal hold, retention purge."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from bench.harness import free_port
from orchestrator.catalog.lifecycle import Stage
from orchestrator.cli import build
from orchestrator.clock import utcnow
from orchestrator.db import session_scope
from orchestrator.sunset import retention
from orchestrator.sunset.models import ArchiveRecord, ArchiveStatus
from orchestrator.timers.models import Deadline, DeadlineStatus
from tests.helpers.timers import audit_actions

runner = CliRunner()


def _retire(app_factory: Any, tmp_path: Path) -> Any:
    app = app_factory(stage=Stage.production, expires_at=None)
    logs = tmp_path / "app-logs" / app.id / "2026"
    logs.mkdir(parents=True)
    (logs / "requests.log").write_text("GET /report 200\n" * 50)
    result = runner.invoke(build(), ["sunset", app.id, "--inline", "--reason", "replaced by the ERP module"])
    assert result.exit_code == 0, result.output
    return app


def _record(app_id: str) -> ArchiveRecord:
    with session_scope(write=False) as session:
        return session.exec(select(ArchiveRecord).where(ArchiveRecord.app_id == app_id)).one()


def test_archive_manifest_and_verify(app_factory: Any, timer_settings: dict[str, str], tmp_path: Path) -> None:
    """The archive holds records, logs and a manifest of digests; verify passes, then fails after tampering."""
    app = _retire(app_factory, tmp_path)
    record = _record(app.id)
    path = Path(record.uri.removeprefix("file://"))
    with tarfile.open(path, "r:gz") as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"manifest.json", "audit.jsonl", "approvals.jsonl", "credentials.jsonl", "logs/2026/requests.log"} <= set(
        names
    )
    assert manifest["reason"] == "replaced by the ERP module" and manifest["created_by"].startswith("cli")
    assert manifest["counts"]["log_files"] == 1 and manifest["counts"]["audit_entries"] >= 4
    assert manifest["time_range"]["from"] <= manifest["time_range"]["to"]
    assert "archive.created" in audit_actions(app.id)
    ok = runner.invoke(build(), ["archive", "verify", app.id])
    assert ok.exit_code == 0 and "ok" in ok.output
    _tamper(path, "audit.jsonl", b'{"edited": true}\n')
    bad = runner.invoke(build(), ["archive", "verify", app.id])
    assert bad.exit_code == 1
    assert "audit.jsonl: SHA-256 mismatch" in bad.output and "archive file digest" in bad.output


def _tamper(path: Path, member: str, data: bytes) -> None:
    with tarfile.open(path, "r:gz") as tar:
        members = [(info, tar.extractfile(info).read()) for info in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(path, "w:gz") as tar:
        for info, content in members:
            content = data if info.name == member else content
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def test_legal_hold_blocks_the_purge(app_factory: Any, timer_settings: dict[str, str], tmp_path: Path) -> None:
    """A held app's archive survives its retention purge; lifting the hold re-arms the purge, which then runs."""
    app = _retire(app_factory, tmp_path)
    record = _record(app.id)
    assert runner.invoke(build(), ["archive", "hold", app.id, "--reason", "litigation 42"]).exit_code == 0
    later = utcnow() + timedelta(days=10_000)
    held = retention.purge(app.id, now=later)
    assert held.held and held.purged == []
    with session_scope() as session:
        session.exec(select(Deadline)).all()
        for row in session.exec(select(Deadline).where(Deadline.kind == "retention_purge")).all():
            row.status = DeadlineStatus.fired
            session.add(row)
    assert runner.invoke(build(), ["archive", "hold", app.id, "--release"]).exit_code == 0
    with session_scope(write=False) as session:
        rearmed = session.exec(
            select(Deadline).where(Deadline.kind == "retention_purge", Deadline.status == DeadlineStatus.pending)
        ).all()
    assert [d.ref for d in rearmed] == [str(record.id)]
    purged = retention.purge(app.id, now=later)
    assert purged.purged == [record.id]
    assert not Path(record.uri.removeprefix("file://")).exists()
    assert _record(app.id).status is ArchiveStatus.purged
    actions = audit_actions(app.id)
    assert ["archive.hold_placed", "archive.purge_skipped", "archive.hold_lifted", "archive.purged"] == [
        a for a in actions if a.startswith("archive.") and a != "archive.created"
    ]
    assert "lifecycle.purge" in actions


def test_overdue_purges_are_found_again(app_factory: Any, timer_settings: dict[str, str], tmp_path: Path) -> None:
    """An archive past retention is listed for a purge retry, unless its app is on legal hold."""
    app = _retire(app_factory, tmp_path)
    record = _record(app.id)
    with session_scope() as session:
        assert retention.overdue_purges(session) == []  # not due yet
        row = session.get_one(ArchiveRecord, record.id)
        row.retain_until = utcnow() - timedelta(minutes=1)
        session.add(row)
    with session_scope(write=False) as session:
        assert retention.overdue_purges(session) == [app.id]
    assert runner.invoke(build(), ["archive", "hold", app.id, "--reason", "audit"]).exit_code == 0
    with session_scope(write=False) as session:
        assert retention.overdue_purges(session) == []


@pytest.fixture
def s3_archive(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto S3 server on a free port with a bucket; ARCHIVE_URL points into it."""
    import boto3
    from moto.server import ThreadedMotoServer

    from orchestrator.config import get_settings

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test-access",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "ARCHIVE_URL": "s3://retired-apps/orchestrator",
        "ARCHIVE_S3_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="retired-apps")
    yield endpoint
    server.stop()


def test_s3_backend(app_factory: Any, timer_settings: dict[str, str], s3_archive: str, tmp_path: Path) -> None:
    """With an s3:// ARCHIVE_URL the archive goes to the bucket, verifies, and is deleted by the purge."""
    import boto3

    app = _retire(app_factory, tmp_path)
    record = _record(app.id)
    assert record.uri.startswith("s3://retired-apps/orchestrator/expense-helper/")
    client = boto3.client("s3", endpoint_url=s3_archive, region_name="us-east-1")
    assert client.head_object(Bucket="retired-apps", Key=f"orchestrator/{record.key}")["ContentLength"] == record.size
    assert runner.invoke(build(), ["archive", "verify", app.id]).exit_code == 0
    assert retention.purge(app.id, now=utcnow() + timedelta(days=10_000)).purged == [record.id]
    assert client.list_objects_v2(Bucket="retired-apps").get("KeyCount") == 0
