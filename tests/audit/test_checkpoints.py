"""Signed checkpoints anchor the chain's tail, on SQLite and PostgreSQL, against a real directory store.

The chain alone cannot tell a shortened chain, or one whose last entry was rewritten with its hash
recomputed, from an intact one; these tests tamper with raw SQL as an attacker with database access
would, show that the chain alone still verifies, and that the checkpoint catches it.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from sqlmodel import col, select

from bench.harness import free_port
from orchestrator.audit import checkpoints, keys
from orchestrator.audit.models import AuditCheckpoint, AuditEntry
from orchestrator.config import get_settings
from orchestrator.db import session_scope
from orchestrator.errors import ConfigError
from tests.audit.helpers import append, chain_verifies, configure, latest_document, rewrite_entry, seed_key, sql


@pytest.fixture
def archive(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory archive store and a checkpoint key, configured; the database is the parametrised one."""
    path = tmp_path / "archive"
    configure(monkeypatch, path)
    return path


def checkpoint_now(*, force: bool = False) -> checkpoints.Written:
    """Write a checkpoint as the scheduler does."""
    return checkpoints.checkpoint_now(get_settings(), actor="test", force=force)


def check() -> checkpoints.CheckResult:
    """Check the chain against its checkpoints with the configured key and store."""
    key = keys.checkpoint_key(create=False)
    assert key is not None
    with session_scope(write=False) as session:
        return checkpoints.check(session, checkpoints.store_for(get_settings()), key)


def table_rows() -> list[AuditCheckpoint]:
    """Every row of the checkpoint table, oldest first."""
    with session_scope(write=False) as session:
        return list(session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.id))).all())


def head() -> AuditEntry:
    """The chain's last entry."""
    with session_scope(write=False) as session:
        return session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1)).one()


def test_checkpoint_round_trip(archive: Path) -> None:
    """A checkpoint names the head, is signed, lands in the store and the table, and reads back equal."""
    append(5)
    written = checkpoint_now()
    assert written.skipped is None and written.refused is None
    cp = written.checkpoint
    assert cp is not None
    last = head()
    key = keys.checkpoint_key(create=False)
    assert key is not None
    assert (cp.seq, cp.hash, cp.key_id) == (5, last.hash, key.key_id)
    # The store holds it under its seq and as latest.json, and publishes the public key by its id.
    doc = latest_document(archive)
    assert doc == cp.document() == json.loads((archive / checkpoints.object_key(5)).read_text(encoding="utf-8"))
    assert set(doc) == {"seq", "hash", "at", "key_id", "signature"}
    assert written.location == (archive / checkpoints.object_key(5)).resolve().as_uri()
    published = (archive / checkpoints.public_key_key(key.key_id)).read_text(encoding="ascii")
    assert keys.parse_public_key(published, source="store").public_bytes_raw() == key.public_key.public_bytes_raw()
    # The table row records the same checkpoint.
    [row] = table_rows()
    assert checkpoints.Checkpoint.from_row(row) == cp == checkpoints.Checkpoint.from_document(doc)
    assert (row.created_by, row.location) == ("test", written.location)
    assert checkpoints.signature_problem(cp, key) is None
    result = check()
    assert result.ok, result.problems
    assert result.checkpoint is not None and result.checkpoint.checkpoint == cp
    assert result.checkpoint.source.startswith("archive store file://")


def test_skipped_while_the_head_does_not_move(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No new checkpoint for an unmoved head; a new entry, or a new key, makes the next one."""
    assert checkpoint_now().skipped == "the audit chain is empty"
    append(3)
    first = checkpoint_now().checkpoint
    again = checkpoint_now()
    assert again.skipped == "the head did not move since the last checkpoint"
    assert len(table_rows()) == 1
    append(1, start=4)
    moved = checkpoint_now()
    assert moved.skipped is None and moved.checkpoint is not None and moved.checkpoint.seq == 4
    configure(monkeypatch, archive)  # the operator replaced AUDIT_CHECKPOINT_KEY
    rekeyed = checkpoint_now()
    assert rekeyed.skipped is None and rekeyed.checkpoint is not None
    assert rekeyed.checkpoint.seq == 4 and first is not None and rekeyed.checkpoint.key_id != first.key_id
    assert check().ok
    assert [r.seq for r in table_rows()] == [3, 4, 4]


def test_a_missing_copy_is_written_again(archive: Path) -> None:
    """When the store lost latest.json the unmoved head is still checkpointed again, so both sources hold it."""
    append(2)
    checkpoint_now()
    (archive / checkpoints.LATEST_KEY).unlink()
    again = checkpoint_now()
    assert again.skipped is None
    assert latest_document(archive)["seq"] == 2


def test_truncated_tail_is_detected(archive: Path, db_url: str) -> None:
    """Deleting the last entries leaves a chain that verifies alone; the checkpoint says what is missing."""
    append(8)
    checkpoint_now()
    sql(db_url, "DELETE FROM audit_entry WHERE seq > 5")
    assert chain_verifies()  # the defect: the chain alone cannot tell
    result = check()
    assert not result.ok
    [problem] = result.problems  # store and table hold the same checkpoint: reported once
    assert "the chain ends at entry 5, but it had reached entry 8: entries were removed from its tail" in problem
    # The scheduler refuses to checkpoint over the evidence, even after new entries fill the gap's length.
    append(4, start=6)
    refused = checkpoint_now()
    assert refused.checkpoint is None and refused.refused and "rewritten" in refused.refused
    assert latest_document(archive)["seq"] == 8


def test_truncation_to_nothing_is_detected(archive: Path, db_url: str) -> None:
    """Emptying the whole trail is caught too, and no checkpoint of the empty chain is written."""
    append(3)
    checkpoint_now()
    sql(db_url, "DELETE FROM audit_entry")
    assert chain_verifies()
    assert "the chain ends at entry 0" in check().problems[0]
    assert checkpoint_now().refused


def test_rewritten_last_entry_is_detected(archive: Path, db_url: str) -> None:
    """The last entry edited with its hash recomputed still chains; its hash no longer matches the checkpoint."""
    append(6)
    original = head().hash
    checkpoint_now()
    rewrite_entry(db_url, 6, "nothing happened here")
    assert chain_verifies()
    forged = head().hash
    assert forged != original
    result = check()
    assert not result.ok
    assert f"entry 6 has hash {forged}, but the checkpoint says {original}" in result.problems[0]
    assert "rewritten" in result.problems[0]


def test_deleting_the_checkpoint_rows_does_not_hide_a_truncation(archive: Path, db_url: str) -> None:
    """An attacker who also empties the checkpoint table is caught by the copy in the archive store."""
    append(5)
    checkpoint_now()
    sql(db_url, "DELETE FROM audit_entry WHERE seq = 5")
    sql(db_url, "DELETE FROM audit_checkpoint")
    result = check()
    assert not result.ok and "archive store" in result.problems[0] and "removed from its tail" in result.problems[0]


def test_the_table_stands_in_for_an_unreadable_store(archive: Path, db_url: str) -> None:
    """When latest.json cannot be read, the table's checkpoint is checked and the store's problem reported."""
    append(4)
    checkpoint_now()
    (archive / checkpoints.LATEST_KEY).write_text("{not json", encoding="utf-8")
    result = check()
    assert result.ok and result.store_error and "not JSON" in result.store_error
    assert result.checkpoint is not None and result.checkpoint.source == "audit_checkpoint table"
    sql(db_url, "DELETE FROM audit_entry WHERE seq = 4")
    assert "removed from its tail" in check().problems[0]


def _store_forgery(archive: Path, **changes: object) -> None:
    doc = latest_document(archive)
    doc.update(changes)
    (archive / checkpoints.LATEST_KEY).write_text(json.dumps(doc), encoding="utf-8")


@pytest.mark.parametrize("where", ["store", "table"])
def test_forged_checkpoint_signature_is_detected(archive: Path, db_url: str, where: str) -> None:
    """A checkpoint whose fields were changed after signing, in either source, fails its signature."""
    append(6)
    checkpoint_now()
    # The forger moves the anchor back to entry 4 to hide a truncation of entries 5 and 6.
    sql(db_url, "DELETE FROM audit_entry WHERE seq > 4")
    with session_scope(write=False) as session:
        entry4 = session.exec(select(AuditEntry).where(AuditEntry.seq == 4)).one()
    if where == "store":
        _store_forgery(archive, seq=4, hash=entry4.hash)
    else:
        (archive / checkpoints.LATEST_KEY).unlink()
        sql(db_url, "UPDATE audit_checkpoint SET seq = 4, hash = :h", h=entry4.hash)
    result = check()
    assert not result.ok
    assert "its signature does not verify" in result.problems[0]
    assert ("archive store" if where == "store" else "audit_checkpoint table") in result.problems[0]


def test_checkpoint_signed_by_another_key_is_refused(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A well-signed checkpoint under a key that is not the configured one does not count."""
    append(2)
    checkpoint_now()
    mine = keys.checkpoint_key(create=False)
    configure(monkeypatch, archive)  # verify with a different key than the one that signed
    other = keys.checkpoint_key(create=False)
    assert mine is not None and other is not None and mine.key_id != other.key_id
    problems = check().problems
    assert problems and f"signed by key {mine.key_id}, not by the checkpoint key {other.key_id}" in problems[0]


def test_forger_claiming_our_key_id_is_refused(archive: Path) -> None:
    """A checkpoint signed by an attacker's key but naming ours fails the signature check."""
    append(3)
    checkpoint_now()
    ours = keys.checkpoint_key(create=False)
    assert ours is not None
    attacker = keys.parse_private_key(seed_key(), source="attacker")
    with session_scope(write=False) as session:
        entry2 = session.exec(select(AuditEntry).where(AuditEntry.seq == 2)).one()
    fake = checkpoints.sign(
        keys.CheckpointKey(ours.key_id, ours.public_key, attacker, "attacker"), seq=2, hash=entry2.hash
    )
    (archive / checkpoints.LATEST_KEY).write_text(json.dumps(fake.document()), encoding="utf-8")
    problems = check().problems
    assert problems and "its signature does not verify" in problems[0]


# ---------------------------------------------------------------- the key


def test_key_file_is_made_once_and_never_by_a_verifier(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without AUDIT_CHECKPOINT_KEY the first writer creates a private 0600 key file; verifiers only read it."""
    monkeypatch.delenv("AUDIT_CHECKPOINT_KEY", raising=False)
    monkeypatch.setenv("ARCHIVE_URL", str(tmp_path / "archive"))
    get_settings.cache_clear()
    path = tmp_path / "var" / "audit-checkpoint.key"
    monkeypatch.setattr(keys, "KEY_FILE", path)
    assert keys.checkpoint_key(create=False) is None
    assert not path.exists()
    append(2)
    written = checkpoint_now()
    assert written.checkpoint is not None
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text(encoding="ascii").startswith("-----BEGIN PRIVATE KEY-----")
    again = keys.checkpoint_key(create=True)
    assert again is not None and again.key_id == written.checkpoint.key_id
    assert check().ok


def test_key_formats() -> None:
    """AUDIT_CHECKPOINT_KEY takes a base64 seed or a PEM; the public key a PEM or raw base64; junk is refused."""
    seed = seed_key()
    from_seed = keys.parse_private_key(seed, source="AUDIT_CHECKPOINT_KEY")
    pem = from_seed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    from_pem = keys.parse_private_key(pem, source="AUDIT_CHECKPOINT_KEY")
    assert keys.key_id_of(from_seed.public_key()) == keys.key_id_of(from_pem.public_key())
    loaded = keys._private(from_seed, "test")
    public = keys.parse_public_key(loaded.public_pem(), source="file")
    assert keys.key_id_of(public) == loaded.key_id
    for junk in ("", "c2hvcnQ=", "-----BEGIN PRIVATE KEY-----\nxx\n-----END PRIVATE KEY-----"):
        with pytest.raises(ConfigError, match="AUDIT_CHECKPOINT_KEY"):
            keys.parse_private_key(junk, source="AUDIT_CHECKPOINT_KEY")


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"seq": "8", "hash": "h", "at": "2026-01-01T00:00:00+00:00", "key_id": "k", "signature": "s"},
        {"seq": True, "hash": "h", "at": "2026-01-01T00:00:00+00:00", "key_id": "k", "signature": "s"},
        {"seq": 8, "hash": "", "at": "2026-01-01T00:00:00+00:00", "key_id": "k", "signature": "s"},
        {"seq": 8, "hash": "h", "at": "yesterday", "key_id": "k", "signature": "s"},
        {"seq": 8, "hash": "h", "at": "2026-01-01T00:00:00", "key_id": "k", "signature": "s"},
        {"seq": 8, "hash": "h", "at": "2026-01-01T00:00:00+00:00", "key_id": "k"},
    ],
    ids=["not-object", "seq-text", "seq-bool", "empty-hash", "bad-time", "naive-time", "no-signature"],
)
def test_malformed_documents_are_refused(doc: object) -> None:
    """A stored document of the wrong shape is refused with the field at fault, never half-trusted."""
    with pytest.raises(checkpoints.CheckpointMalformed):
        checkpoints.Checkpoint.from_document(doc)


# ---------------------------------------------------------------- an S3 archive store


@pytest.fixture
def s3_checkpoints(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A moto S3 server with a new bucket as the archive store, and a checkpoint key; yields (endpoint, bucket).

    moto keeps buckets in process-wide state across servers, so each test gets a bucket of its own.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-access")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
    monkeypatch.setenv("ARCHIVE_S3_ENDPOINT_URL", endpoint)
    configure(monkeypatch, tmp_path / "unused")
    bucket = f"audit-anchor-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ARCHIVE_URL", f"s3://{bucket}/orchestrator")
    get_settings.cache_clear()
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    yield endpoint, bucket
    server.stop()


def test_checkpoints_in_an_s3_bucket(s3_checkpoints: tuple[str, str], db_url: str) -> None:
    """Checkpoints go to the bucket under audit-checkpoints/; the bucket's copy catches a truncation alone."""
    import boto3

    endpoint, bucket = s3_checkpoints
    append(4)
    written = checkpoint_now()
    assert written.location == f"s3://{bucket}/orchestrator/audit-checkpoints/000000000004.json"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    body = client.get_object(Bucket=bucket, Key="orchestrator/audit-checkpoints/latest.json")["Body"].read()
    assert written.checkpoint is not None and json.loads(body) == written.checkpoint.document()
    assert check().ok
    sql(db_url, "DELETE FROM audit_entry WHERE seq = 4")
    sql(db_url, "DELETE FROM audit_checkpoint")
    result = check()
    assert not result.ok and f"archive store s3://{bucket}/" in result.problems[0]
