"""Helpers of the audit tests: a configured checkpoint key and archive store, a seeded chain, raw SQL."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlmodel import select

from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.checkpoints import LATEST_KEY
from orchestrator.audit.models import AuditEntry
from orchestrator.db import get_engine, session_scope


def seed_key() -> str:
    """A new Ed25519 private key as AUDIT_CHECKPOINT_KEY takes it: base64 of the 32-byte seed."""
    raw = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode("ascii")


def configure(monkeypatch: pytest.MonkeyPatch, archive: Path, key: str | None = None) -> str:
    """Set ARCHIVE_URL to `archive` and AUDIT_CHECKPOINT_KEY to `key` (a new one when None); returns the key."""
    from orchestrator.config import get_settings

    key = key or seed_key()
    monkeypatch.setenv("ARCHIVE_URL", str(archive))
    monkeypatch.setenv("AUDIT_CHECKPOINT_KEY", key)
    get_settings.cache_clear()
    return key


def append(count: int, *, start: int = 1) -> None:
    """Append `count` entries to the chain, one transaction each."""
    for i in range(start, start + count):
        with session_scope() as session:
            audit.record(
                session,
                actor=f"user{i}@example.com",
                action=AuditAction.lifecycle_extend,
                app_id="alpha",
                reason=f"step {i}",
                data={"i": i},
            )


def sql(url: str, statement: str, **params: object) -> None:
    """Run raw SQL as an attacker with database access would, outside the application."""
    with get_engine(url).begin() as conn:
        conn.execute(text(statement), params)


def rewrite_entry(url: str, seq: int, reason: str) -> None:
    """Edit the entry at `seq` and recompute its hash, as an attacker who knows the hashing scheme would."""
    with session_scope(write=False) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.seq == seq)).one()
        entry.reason = reason
        forged = audit.entry_hash(entry.prev_hash, entry)
        session.expunge(entry)
    sql(url, "UPDATE audit_entry SET reason = :r, hash = :h WHERE seq = :s", r=reason, h=forged, s=seq)


def chain_verifies() -> bool:
    """True when the chain alone (without checkpoints) verifies."""
    with session_scope(write=False) as session:
        return audit.verify(session).ok


def latest_document(archive: Path) -> dict[str, object]:
    """The checkpoint document `latest.json` holds in a directory store."""
    loaded: dict[str, object] = json.loads((archive / LATEST_KEY).read_text(encoding="utf-8"))
    return loaded
