"""The audit trail: append-only, hash-chained entries, a verifier and exporters.

Each entry's hash is SHA-256 over the previous entry's hash and a canonical JSON of the entry, so
editing, deleting or reordering any row breaks the chain at that row. `seq` is unique: two writers
that read the same tail cannot both append after it (on PostgreSQL an advisory lock serialises
them first; on SQLite the write transaction is already exclusive).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import event, text
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction, SessionTransactionOrigin
from sqlmodel import Session, col, select

from orchestrator.audit import milestones
from orchestrator.audit.actions import AuditAction, audit_action
from orchestrator.audit.models import AuditEntry
from orchestrator.clock import as_utc, utcnow

GENESIS_HASH = "0" * 64
# Arbitrary constant key for pg_advisory_xact_lock: "audit" in ASCII.
_PG_LOCK_KEY = 0x6175646974


def canonical_json(entry: AuditEntry) -> str:
    """The bytes an entry's hash covers, minus the previous hash: stable key order, no spaces."""
    body = {
        "seq": entry.seq,
        "at": as_utc(entry.at).isoformat(timespec="microseconds"),
        "app_id": entry.app_id,
        "actor": entry.actor,
        "action": entry.action,
        "reason": entry.reason,
        "data": entry.data,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    """SHA-256 over the previous hash and the entry's canonical JSON."""
    return hashlib.sha256((prev_hash + "\n" + canonical_json(entry)).encode("utf-8")).hexdigest()


def _lock_chain(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_PG_LOCK_KEY))


# session.info key: (seq, hash, entry) of the newest entry this transaction appended (entry None when
# it only read the tail, under the lock).
_TAIL = "audit_chain_tail"


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_tail(session: OrmSession, transaction: SessionTransaction) -> None:
    # The outermost transaction's end (commit or rollback) releases the lock: the next entry reads
    # the tail again. Savepoints and a flush's internal subtransaction do not release it; an entry a
    # rolled-back savepoint took away is caught in `_chain_tail`.
    if transaction.origin is not SessionTransactionOrigin.SUBTRANSACTION and not transaction.nested:
        session.info.pop(_TAIL, None)


def _chain_tail(session: Session) -> tuple[int, str]:
    """(seq, hash) of the chain's last entry, read once per transaction under the chain's lock."""
    cached = session.info.get(_TAIL)
    # A savepoint rolled back since takes its entries out of the session: then read the tail again.
    if cached is not None and (cached[2] is None or cached[2] in session):
        return cast(int, cached[0]), cast(str, cached[1])
    _lock_chain(session)
    tail = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    found = (tail.seq, tail.hash) if tail else (0, GENESIS_HASH)
    session.info[_TAIL] = (*found, None)
    return found


def record(
    session: Session,
    *,
    actor: str,
    action: AuditAction | str,
    app_id: str | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry to the chain inside the caller's transaction.

    `action` must be an AuditAction (or its value): ValueError otherwise, before anything is written.
    The chain is locked and its tail read once per transaction; entries are written at the next
    flush, so the many entries of one change (an owner leaving with hundreds of apps) go to the
    database together rather than three statements each.
    """
    # Stored as the plain value: the hash covers exactly what the database hands back later.
    known = str(audit_action(action))
    tail_seq, tail_hash = _chain_tail(session)
    # JSON round trip so the hashed form equals what the database hands back later.
    clean = json.loads(json.dumps(data or {}, default=str))
    entry = AuditEntry(
        seq=tail_seq + 1,
        at=as_utc(at) if at else utcnow(),
        app_id=app_id,
        actor=actor,
        action=known,
        reason=reason,
        data=clean,
        prev_hash=tail_hash,
        hash="",
    )
    entry.hash = entry_hash(entry.prev_hash, entry)
    session.add(entry)
    session.info[_TAIL] = (entry.seq, entry.hash, entry)
    # The per-app milestones the KPIs read move with the chain: written by the same flush.
    milestones.defer(session, entry)
    return entry


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of walking the chain."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    broken_id: int | None = None
    reason: str | None = None


def verify(session: Session, *, batch: int = 1000) -> VerifyResult:
    """Walk the whole chain in order; report the first entry whose link or hash does not hold."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    # No lower bound on the first batch: a row moved to seq 0 or below must be reported, not skipped.
    last_seq: int | None = None
    while True:
        query = select(AuditEntry) if last_seq is None else select(AuditEntry).where(col(AuditEntry.seq) > last_seq)
        rows = session.exec(query.order_by(col(AuditEntry.seq)).limit(batch)).all()
        if not rows:
            return VerifyResult(ok=True, checked=checked)
        for entry in rows:
            problem = None
            if entry.seq > expected_seq:
                problem = f"sequence gap: expected entry {expected_seq}, found {entry.seq} (a row was deleted)"
            elif entry.seq < expected_seq:
                problem = f"sequence out of place: expected entry {expected_seq}, found {entry.seq} (a row was moved)"
            elif entry.prev_hash != expected_prev:
                problem = "previous-hash link broken (a row was deleted, reordered or edited)"
            elif entry_hash(entry.prev_hash, entry) != entry.hash:
                problem = "content does not match its hash (the row was edited)"
            if problem:
                return VerifyResult(False, checked, broken_seq=entry.seq, broken_id=entry.id, reason=problem)
            checked += 1
            expected_prev = entry.hash
            expected_seq += 1
            last_seq = entry.seq


def entries(session: Session, *, app_id: str | None = None, batch: int = 1000) -> Iterator[AuditEntry]:
    """Every entry in chain order, optionally for one app, read in batches."""
    last_seq = 0
    while True:
        query = select(AuditEntry).where(col(AuditEntry.seq) > last_seq)
        if app_id is not None:
            query = query.where(AuditEntry.app_id == app_id)
        rows = session.exec(query.order_by(col(AuditEntry.seq)).limit(batch)).all()
        if not rows:
            return
        yield from rows
        last_seq = rows[-1].seq


EXPORT_FIELDS = ["seq", "at", "app_id", "actor", "action", "reason", "data", "prev_hash", "hash"]


def as_record(entry: AuditEntry) -> dict[str, Any]:
    """An entry as a plain dict for export or the API."""
    return {
        "seq": entry.seq,
        "at": as_utc(entry.at).isoformat(),
        "app_id": entry.app_id,
        "actor": entry.actor,
        "action": entry.action,
        "reason": entry.reason,
        "data": entry.data,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def export_jsonl(rows: Iterable[AuditEntry]) -> Iterator[str]:
    """One JSON object per line."""
    for entry in rows:
        yield json.dumps(as_record(entry), sort_keys=True, ensure_ascii=False) + "\n"


def export_csv(rows: Iterable[AuditEntry]) -> Iterator[str]:
    """CSV with a header row; `data` is a JSON cell."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for entry in rows:
        rec = as_record(entry)
        rec["data"] = json.dumps(rec["data"], sort_keys=True, ensure_ascii=False)
        writer.writerow(rec)
        yield buf.getvalue()
        buf.seek(0)
        buf.truncate()
    if buf.getvalue():
        yield buf.getvalue()
