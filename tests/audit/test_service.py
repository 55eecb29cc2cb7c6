"""The audit trail on SQLite and PostgreSQL: chaining, tamper detection with raw SQL, and exports."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import select
from typer.testing import CliRunner, Result

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.cli import build
from orchestrator.db import get_engine, session_scope

APPS = ("alpha", "beta")


def seed(count: int = 8) -> list[AuditEntry]:
    """Write `count` entries, one transaction each, alternating between two apps, with awkward data."""
    written = []
    for i in range(1, count + 1):
        with session_scope() as session:
            written.append(
                audit.record(
                    session,
                    actor=f"user{i}@example.com",
                    action=AuditAction.lifecycle_extend,
                    app_id=APPS[i % 2],
                    reason=f'step {i}: été, "quoted", comma, ✓\nsecond line',
                    data={
                        "i": i,
                        "ratio": i / 3,
                        "nested": {"z": [1, None, True]},
                        "when": datetime(2026, 1, i, tzinfo=UTC),
                    },
                )
            )
    return written


def sql(url: str, statement: str, **params: object) -> None:
    """Run raw SQL as an attacker with database access would, outside the application."""
    with get_engine(url).begin() as conn:
        conn.execute(text(statement), params)


def verify() -> audit.VerifyResult:
    """Run the verifier in a read transaction."""
    with session_scope(write=False) as session:
        return audit.verify(session)


def row_id(seq: int) -> int:
    """The primary key of the entry at position `seq`."""
    with session_scope(write=False) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.seq == seq)).one()
        assert entry.id is not None
        return entry.id


def cli(*args: str) -> Result:
    """Invoke the real CLI in-process."""
    return CliRunner().invoke(build(), list(args))


def test_chain_links_and_verifies(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries get seq 1..N, each linking to the previous hash, and the intact chain verifies."""
    from orchestrator.config import get_settings

    monkeypatch.setenv("ARCHIVE_URL", str(tmp_path / "archive"))  # no checkpoint store of another run
    get_settings.cache_clear()
    written = seed(5)
    assert [e.seq for e in written] == [1, 2, 3, 4, 5]
    assert written[0].prev_hash == audit.GENESIS_HASH
    for before, after in zip(written, written[1:], strict=False):
        assert after.prev_hash == before.hash
    assert verify() == audit.VerifyResult(ok=True, checked=5)
    result = cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "audit chain intact: 5 entries",
        "checkpoint: none yet, the tail is not anchored (`orchestrator audit checkpoint` writes one)",
    ]


def test_empty_chain_verifies(db_url: str) -> None:
    """An empty trail is intact."""
    assert verify() == audit.VerifyResult(ok=True, checked=0)


def test_verify_across_batches(db_url: str) -> None:
    """The verifier carries the link across batch boundaries."""
    seed(7)
    with session_scope(write=False) as session:
        assert audit.verify(session, batch=3).ok


TAMPERING = {
    "edit-reason": ("UPDATE audit_entry SET reason = 'nothing to see' WHERE seq = 3", 3, "content does not match"),
    "edit-actor": ("UPDATE audit_entry SET actor = 'mallory@example.com' WHERE seq = 3", 3, "content does not match"),
    "edit-data": ("UPDATE audit_entry SET data = '{\"i\": 99}' WHERE seq = 3", 3, "content does not match"),
    "edit-time": ("UPDATE audit_entry SET at = '2020-01-01 00:00:00' WHERE seq = 3", 3, "content does not match"),
    "edit-app": ("UPDATE audit_entry SET app_id = 'gamma' WHERE seq = 6", 6, "content does not match"),
    "delete-middle": ("DELETE FROM audit_entry WHERE seq = 3", 4, "sequence gap"),
    "delete-first": ("DELETE FROM audit_entry WHERE seq = 1", 2, "sequence gap"),
    "delete-and-renumber": (
        "DELETE FROM audit_entry WHERE seq = 3; UPDATE audit_entry SET seq = seq - 1 WHERE seq > 3",
        3,
        "previous-hash link broken",
    ),
    "swap-seq": (
        "UPDATE audit_entry SET seq = -1 WHERE seq = 3; UPDATE audit_entry SET seq = 3 WHERE seq = 4; "
        "UPDATE audit_entry SET seq = 4 WHERE seq = -1",
        3,
        "previous-hash link broken",
    ),
    "swap-hashes": (
        # Row 4's prev_hash still holds row 3's original hash, so no temporary is needed.
        "UPDATE audit_entry SET hash = (SELECT hash FROM audit_entry WHERE seq = 4) WHERE seq = 3; "
        "UPDATE audit_entry SET hash = (SELECT prev_hash FROM audit_entry WHERE seq = 4) WHERE seq = 4",
        3,
        "content does not match",
    ),
    "move-last-out": ("UPDATE audit_entry SET seq = 0 WHERE seq = 8", 0, "sequence out of place"),
    "append-forged": (
        "INSERT INTO audit_entry (seq, at, app_id, actor, action, reason, data, prev_hash, hash) "
        "SELECT 9, at, app_id, actor, 'lifecycle.approve', 'forged', data, hash, hash FROM audit_entry WHERE seq = 8",
        9,
        "content does not match",
    ),
    "edit-prev-hash": ("UPDATE audit_entry SET prev_hash = hash WHERE seq = 5", 5, "previous-hash link broken"),
}


@pytest.mark.parametrize("kind", sorted(TAMPERING))
def test_tampering_is_detected(db_url: str, kind: str) -> None:
    """Editing, deleting or reordering rows with raw SQL breaks the chain at the first touched entry."""
    seed(8)
    statements, broken_seq, reason = TAMPERING[kind]
    for statement in statements.split("; "):
        sql(db_url, statement)
    expected_id = row_id(broken_seq)  # the row sitting at that position after the tampering
    result = verify()
    assert not result.ok
    assert (result.broken_seq, result.broken_id) == (broken_seq, expected_id)
    assert reason in (result.reason or "")
    with session_scope(write=False) as session:
        before = session.exec(select(AuditEntry).where(AuditEntry.seq < broken_seq)).all()
    assert result.checked == len(before)  # everything before the break was checked and found intact
    shown = cli("audit", "verify")
    assert shown.exit_code == 1
    assert shown.stdout == ""
    assert f"audit chain broken at entry seq={broken_seq} id={expected_id}: {reason}" in shown.stderr


def test_rehashing_one_row_breaks_the_next(db_url: str) -> None:
    """An attacker who edits a row and recomputes its hash is caught at the following entry."""
    seed(6)
    with session_scope() as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        entry.reason = "rewritten"
        forged = audit.entry_hash(entry.prev_hash, entry)
    sql(db_url, "UPDATE audit_entry SET reason = 'rewritten', hash = :h WHERE seq = 2", h=forged)
    result = verify()
    assert (result.ok, result.broken_seq) == (False, 3)
    assert "previous-hash link broken" in (result.reason or "")


def test_reads_back_what_was_hashed(db_url: str) -> None:
    """Unicode, newlines, floats, nested JSON and datetimes in data survive the database round trip."""
    seed(2)
    with session_scope(write=False) as session:
        first = next(audit.entries(session))
    assert first.data == {"i": 1, "ratio": 1 / 3, "nested": {"z": [1, None, True]}, "when": "2026-01-01 00:00:00+00:00"}
    assert "été" in first.reason and "\n" in first.reason
    assert verify().ok


# ---------------------------------------------------------------- export


def exported_jsonl(*args: str) -> list[dict[str, object]]:
    """Run `audit export` as JSON lines and parse its stdout."""
    result = cli("audit", "export", "--format", "jsonl", *args)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_export_jsonl_everything(db_url: str) -> None:
    """JSON lines export holds every entry, in chain order, with its hashes, linking up."""
    written = seed(6)
    records = exported_jsonl()
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert records[2] == {
        "seq": 3,
        "at": written[2].at.isoformat(),
        "app_id": "beta",
        "actor": "user3@example.com",
        "action": "lifecycle.extend",
        "reason": written[2].reason,
        "data": json.loads(json.dumps(written[2].data)),
        "prev_hash": written[1].hash,
        "hash": written[2].hash,
    }
    for before, after in zip(records, records[1:], strict=False):
        assert after["prev_hash"] == before["hash"]


def test_export_jsonl_one_app(db_url: str) -> None:
    """--app keeps only that app's entries."""
    seed(6)
    assert [r["seq"] for r in exported_jsonl("--app", "alpha")] == [2, 4, 6]
    assert exported_jsonl("--app", "nobody") == []


def test_export_csv(db_url: str) -> None:
    """CSV export has a header, one row per entry (multi-line reasons quoted), and data as a JSON cell."""
    written = seed(5)
    result = cli("audit", "export", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3, 4, 5]
    assert list(rows[0]) == audit.EXPORT_FIELDS
    assert rows[4]["reason"] == written[4].reason
    assert json.loads(rows[4]["data"])["nested"] == {"z": [1, None, True]}
    assert rows[4]["hash"] == written[4].hash
    assert rows[0]["app_id"] == "beta"


def test_export_csv_one_app_to_file(db_url: str, tmp_path: Path) -> None:
    """--app and --output write only that app's rows to the file and nothing to stdout."""
    seed(5)
    target = tmp_path / "audit.csv"
    result = cli("audit", "export", "--format", "csv", "--app", "beta", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "wrote 3 entries" in result.stderr
    with target.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["seq"], r["app_id"]) for r in rows] == [("1", "beta"), ("3", "beta"), ("5", "beta")]


def test_export_empty_csv_has_header(db_url: str) -> None:
    """An empty trail exports as a lone header row."""
    result = cli("audit", "export", "--format", "csv")
    assert result.exit_code == 0
    assert result.stdout.strip() == ",".join(audit.EXPORT_FIELDS)
