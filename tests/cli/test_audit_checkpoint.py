"""`orchestrator audit checkpoint`, `audit public-key` and `audit verify` against checkpoints, on both databases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from orchestrator.audit import checkpoints
from orchestrator.cli import build
from tests.audit.helpers import append, configure, latest_document, rewrite_entry, sql


def cli(*args: str) -> Result:
    """Invoke the real CLI in-process."""
    return CliRunner().invoke(build(), list(args))


@pytest.fixture
def archive(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory archive store and a checkpoint key, configured."""
    path = tmp_path / "archive"
    configure(monkeypatch, path)
    return path


def test_checkpoint_then_verify_prints_it(archive: Path) -> None:
    """`audit checkpoint` writes one now; `audit verify` prints its seq, hash, time and key."""
    append(4)
    written = cli("audit", "checkpoint")
    assert written.exit_code == 0, written.output
    doc = latest_document(archive)
    assert written.stdout.splitlines() == [
        f"checkpoint written: seq=4 hash={doc['hash']} at={doc['at']} key={doc['key_id']}",
        f"stored at {(archive / checkpoints.object_key(4)).resolve().as_uri()}",
    ]
    append(2, start=5)
    shown = cli("audit", "verify")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines() == [
        "audit chain intact: 6 entries",
        f"checkpoint: seq=4 hash={doc['hash']} at={doc['at']} key={doc['key_id']} "
        f"(from the archive store {(archive / checkpoints.LATEST_KEY).resolve().as_uri()}; signature good)",
        "2 entries after the checkpoint, not yet anchored",
    ]


def test_verify_without_a_checkpoint_says_so(archive: Path) -> None:
    """An unanchored chain verifies, and the output says the tail is not anchored yet."""
    append(2)
    shown = cli("audit", "verify")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1].startswith("checkpoint: none yet")


def test_verify_fails_on_a_truncated_tail(archive: Path, db_url: str) -> None:
    """Deleting the last rows: exit 1, naming the checkpoint and how far the chain reached."""
    append(8)
    assert cli("audit", "checkpoint").exit_code == 0
    sql(db_url, "DELETE FROM audit_entry WHERE seq >= 7")
    shown = cli("audit", "verify")
    assert shown.exit_code == 1
    assert shown.stdout == ""
    assert shown.stderr.startswith("error: audit chain does not match its checkpoint: checkpoint seq=8 ")
    assert "the chain ends at entry 6, but it had reached entry 8: entries were removed from its tail" in shown.stderr
    refused = cli("audit", "checkpoint")
    assert refused.exit_code == 1 and "checkpoint refused" in refused.stderr


def test_verify_fails_on_a_rewritten_last_entry(archive: Path, db_url: str) -> None:
    """The last entry rewritten and rehashed: the chain walks clean, the checkpoint does not match."""
    append(5)
    assert cli("audit", "checkpoint").exit_code == 0
    rewrite_entry(db_url, 5, "rewritten")
    shown = cli("audit", "verify")
    assert shown.exit_code == 1
    assert "entry 5 has hash" in shown.stderr and "was rewritten" in shown.stderr


def test_verify_fails_on_a_forged_signature(archive: Path) -> None:
    """A checkpoint document altered after signing fails verification."""
    append(3)
    assert cli("audit", "checkpoint").exit_code == 0
    doc = latest_document(archive)
    signature = str(doc["signature"])
    doc["signature"] = ("B" if signature[0] == "A" else "A") + signature[1:]

    (archive / checkpoints.LATEST_KEY).write_text(json.dumps(doc), encoding="utf-8")
    shown = cli("audit", "verify")
    assert shown.exit_code == 1
    assert "its signature does not verify" in shown.stderr


def test_auditor_verifies_with_the_public_key_alone(
    archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`audit public-key` prints the PEM; `verify --public-key` checks with it and no private key at hand."""
    append(3)
    assert cli("audit", "checkpoint").exit_code == 0
    printed = cli("audit", "public-key")
    assert printed.exit_code == 0
    assert printed.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    key_id = latest_document(archive)["key_id"]
    assert printed.stderr.strip() == f"key id: {key_id}"
    pem = tmp_path / "audit.pem"
    pem.write_text(printed.stdout, encoding="ascii")
    configure(monkeypatch, archive)  # this machine's own key is some other key
    assert cli("audit", "verify").exit_code == 1
    shown = cli("audit", "verify", "--public-key", str(pem))
    assert shown.exit_code == 0, shown.output
    assert f"key={key_id}" in shown.stdout and "signature good" in shown.stdout


def test_no_key_is_a_clean_error(archive: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a checkpoint but no key to check it, verify exits 2 saying what to set; public-key too."""
    from orchestrator.audit import keys
    from orchestrator.config import get_settings

    append(1)
    assert cli("audit", "checkpoint").exit_code == 0
    monkeypatch.delenv("AUDIT_CHECKPOINT_KEY")
    monkeypatch.setattr(keys, "KEY_FILE", tmp_path / "nowhere" / "audit-checkpoint.key")
    get_settings.cache_clear()
    shown = cli("audit", "verify")
    assert shown.exit_code == 2
    assert "no key to check its signature" in shown.stderr and "AUDIT_CHECKPOINT_KEY" in shown.stderr
    assert cli("audit", "public-key").exit_code == 2
    assert not (tmp_path / "nowhere").exists()  # checking never makes a key
    monkeypatch.setenv("AUDIT_CHECKPOINT_KEY", "not a key")
    get_settings.cache_clear()
    bad = cli("audit", "verify")
    assert bad.exit_code == 2 and "AUDIT_CHECKPOINT_KEY" in bad.stderr and "Traceback" not in bad.output


def test_unreadable_store_falls_back_to_the_table(archive: Path) -> None:
    """latest.json unreadable: a warning on stderr, and the table's checkpoint is the one checked."""
    append(2)
    assert cli("audit", "checkpoint").exit_code == 0
    (archive / checkpoints.LATEST_KEY).write_text("garbage", encoding="utf-8")
    shown = cli("audit", "verify")
    assert shown.exit_code == 0, shown.output
    assert "warning: cannot read checkpoints from the archive store" in shown.stderr
    assert "(from the audit_checkpoint table; signature good)" in shown.stdout


@pytest.mark.parametrize("command", [["audit", "checkpoint"], ["audit", "public-key"]])
def test_help(command: list[str]) -> None:
    """The new commands document themselves."""
    result = cli(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_unwritable_store_is_a_clean_error(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An archive directory that cannot be made: exit 2 with the reason, no traceback, nothing recorded."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    configure(monkeypatch, blocker / "archive")
    append(1)
    result = cli("audit", "checkpoint")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot write a checkpoint:") and "Traceback" not in result.output
    assert cli("audit", "verify").stdout.splitlines()[1].startswith("checkpoint: none yet")
