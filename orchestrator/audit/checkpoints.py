"""Signed checkpoints of the audit chain's head, kept in the archive store: they anchor its tail.

The chain itself catches an edited, deleted or reordered entry, but not a tail cut off or a last
entry rewritten with its hash recomputed: what remains is still a valid chain. A checkpoint is the
head's `seq` and `hash` at a time, signed with the Ed25519 checkpoint key (`audit.keys`), written
to the archive store as `audit-checkpoints/<seq>.json` and `audit-checkpoints/latest.json`, and
recorded in the `audit_checkpoint` table. Verification takes the newest checkpoint of the two
sources, checks its signature, and that the chain still holds the entry it names with that hash.

Document (JSON): {"seq", "hash", "at", "key_id", "signature"}. The signature is Ed25519 over the
compact JSON of the other four fields with sorted keys (`signed_bytes`), encoded as base64url
without padding, so an auditor can check a checkpoint with any Ed25519 tool and the public key.
"""

from __future__ import annotations

import base64
import binascii
import json
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from sqlalchemy import func
from sqlmodel import Session, col, select

from orchestrator.audit.keys import CheckpointKey
from orchestrator.audit.models import AuditCheckpoint, AuditEntry
from orchestrator.clock import as_utc, utcnow
from orchestrator.config import Settings
from orchestrator.errors import ConfigError, IntegrationError, NotFound
from orchestrator.integrations.archive import ArchiveStore, store_from_url

PREFIX = "audit-checkpoints"
LATEST_KEY = f"{PREFIX}/latest.json"


def object_key(seq: int) -> str:
    """The store key of the checkpoint at `seq` (zero-padded, so a listing sorts by seq)."""
    return f"{PREFIX}/{seq:012d}.json"


def public_key_key(key_id: str) -> str:
    """The store key where the public key named `key_id` is published."""
    return f"{PREFIX}/keys/{key_id}.pem"


def _at_text(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="microseconds")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CheckpointMalformed(ValueError):
    """A checkpoint document that is not the expected JSON object."""


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint: the head's seq and hash at `at`, signed by the key `key_id`."""

    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        """The bytes the signature covers: compact JSON of seq, hash, at and key_id, keys sorted."""
        body = {"seq": self.seq, "hash": self.hash, "at": _at_text(self.at), "key_id": self.key_id}
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def document(self) -> dict[str, Any]:
        """The checkpoint as the JSON object written to the store."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "at": _at_text(self.at),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_document(cls, doc: Any) -> Checkpoint:
        """Parse a stored document; CheckpointMalformed when a field is missing or of the wrong type."""
        if not isinstance(doc, dict):
            raise CheckpointMalformed("a checkpoint is a JSON object")
        seq, hash_, at, key_id, signature = (doc.get(k) for k in ("seq", "hash", "at", "key_id", "signature"))
        if not (isinstance(seq, int) and not isinstance(seq, bool) and seq > 0):
            raise CheckpointMalformed("seq must be a positive integer")
        for name, value in (("hash", hash_), ("at", at), ("key_id", key_id), ("signature", signature)):
            if not isinstance(value, str) or not value:
                raise CheckpointMalformed(f"{name} must be a non-empty string")
        assert isinstance(hash_, str) and isinstance(at, str) and isinstance(key_id, str)
        assert isinstance(signature, str)
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise CheckpointMalformed("at must be an ISO 8601 time") from None
        if when.tzinfo is None:
            raise CheckpointMalformed("at must carry its UTC offset")
        return cls(seq=seq, hash=hash_, at=as_utc(when), key_id=key_id, signature=signature)

    @classmethod
    def from_row(cls, row: AuditCheckpoint) -> Checkpoint:
        """The checkpoint a table row records."""
        return cls(seq=row.seq, hash=row.hash, at=as_utc(row.at), key_id=row.key_id, signature=row.signature)

    def describe(self) -> str:
        """One line naming the checkpoint: seq, hash, time and key."""
        return f"seq={self.seq} hash={self.hash} at={_at_text(self.at)} key={self.key_id}"


def sign(key: CheckpointKey, *, seq: int, hash: str, at: datetime | None = None) -> Checkpoint:
    """A checkpoint of (seq, hash) signed now (or at `at`) with `key`, which must hold its private half."""
    if key.private_key is None:
        raise ConfigError(f"the checkpoint key {key.key_id} from {key.source} has no private half to sign with")
    unsigned = Checkpoint(seq=seq, hash=hash, at=as_utc(at or utcnow()), key_id=key.key_id, signature="")
    signature = _b64(key.private_key.sign(unsigned.signed_bytes()))
    return Checkpoint(seq=seq, hash=hash, at=unsigned.at, key_id=key.key_id, signature=signature)


def signature_problem(checkpoint: Checkpoint, key: CheckpointKey) -> str | None:
    """Why the checkpoint's signature does not hold under `key`, or None when it does."""
    if checkpoint.key_id != key.key_id:
        return f"it is signed by key {checkpoint.key_id}, not by the checkpoint key {key.key_id}"
    try:
        key.public_key.verify(_unb64(checkpoint.signature), checkpoint.signed_bytes())
    except (InvalidSignature, binascii.Error, ValueError):
        return f"its signature does not verify under key {key.key_id} (forged or altered)"
    return None


def tail_problem(session: Session, checkpoint: Checkpoint) -> str | None:
    """Why the chain no longer holds the head the checkpoint names, or None when it does."""
    entry = session.exec(select(AuditEntry).where(AuditEntry.seq == checkpoint.seq)).first()
    if entry is None:
        last = session.exec(select(func.max(AuditEntry.seq))).one()
        if last is None or last < checkpoint.seq:
            return (
                f"the chain ends at entry {last or 0}, but it had reached entry {checkpoint.seq}: "
                "entries were removed from its tail"
            )
        return f"entry {checkpoint.seq}, the checkpointed head, is missing"
    if entry.hash != checkpoint.hash:
        return (
            f"entry {checkpoint.seq} has hash {entry.hash}, but the checkpoint says {checkpoint.hash}: "
            "the entry (or the chain up to it) was rewritten"
        )
    return None


# ---------------------------------------------------------------------------- the two sources


def store_for(settings: Settings) -> ArchiveStore:
    """The archive store the settings name (where checkpoints are kept)."""
    return store_from_url(
        settings.archive_url, endpoint_url=settings.archive_s3_endpoint_url, region=settings.archive_s3_region
    )


def _put_json(store: ArchiveStore, key: str, text: str) -> str:
    with tempfile.TemporaryDirectory(prefix="audit-checkpoint-") as tmp:
        path = Path(tmp) / "object"
        path.write_text(text, encoding="utf-8")
        return store.put(key, path)


def read_store(store: ArchiveStore) -> Checkpoint | None:
    """The checkpoint `latest.json` holds; None when there is none yet.

    IntegrationError (the store is unreachable) or CheckpointMalformed propagate to the caller.
    """
    with tempfile.TemporaryDirectory(prefix="audit-checkpoint-") as tmp:
        path = Path(tmp) / "latest.json"
        try:
            store.fetch(LATEST_KEY, path)
        except NotFound:
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise CheckpointMalformed(f"{store.uri(LATEST_KEY)} is not JSON") from None
    return Checkpoint.from_document(doc)


def read_table(session: Session) -> Checkpoint | None:
    """The newest checkpoint recorded in the table (highest seq, then the latest written)."""
    row = session.exec(
        select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc(), col(AuditCheckpoint.id).desc()).limit(1)
    ).first()
    return Checkpoint.from_row(row) if row else None


@dataclass(frozen=True)
class Found:
    """A checkpoint and where it was read."""

    checkpoint: Checkpoint
    source: str


@dataclass(frozen=True)
class Sources:
    """The newest checkpoint of the store and of the table; `store_error` says why the store was unreadable."""

    store: Checkpoint | None
    table: Checkpoint | None
    store_uri: str = ""
    store_error: str | None = None

    @property
    def found(self) -> list[Found]:
        """Each distinct checkpoint found, the store's first."""
        items = []
        if self.store is not None:
            items.append(Found(self.store, f"archive store {self.store_uri}"))
        if self.table is not None and self.table != self.store:
            items.append(Found(self.table, "audit_checkpoint table"))
        return items

    @property
    def newest(self) -> Found | None:
        """The checkpoint with the highest seq (the store's on a tie: it is out of the database's reach)."""
        best: Found | None = None
        for item in self.found:
            if best is None or item.checkpoint.seq > best.checkpoint.seq:
                best = item
        return best


def newest_checkpoints(session: Session, store: ArchiveStore | None) -> Sources:
    """The newest checkpoint in the store and in the table; a store that cannot be read is reported."""
    from_store = None
    store_error = None
    store_uri = ""
    if store is not None:
        store_uri = store.uri(LATEST_KEY)
        try:
            from_store = read_store(store)
        except (IntegrationError, CheckpointMalformed) as exc:
            store_error = str(exc)
    return Sources(from_store, read_table(session), store_uri, store_error)


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking the chain against its checkpoints."""

    checkpoint: Found | None
    problems: list[str]
    store_error: str | None
    head_seq: int

    @property
    def ok(self) -> bool:
        """True when every checkpoint found verifies and the chain still holds what each names."""
        return not self.problems


def check(session: Session, store: ArchiveStore | None, key: CheckpointKey) -> CheckResult:
    """Check the chain against the newest checkpoint of each source: its signature, then the tail it names."""
    sources = newest_checkpoints(session, store)
    problems = []
    for item in sources.found:
        problem = signature_problem(item.checkpoint, key) or tail_problem(session, item.checkpoint)
        if problem:
            problems.append(f"checkpoint {item.checkpoint.describe()} from the {item.source}: {problem}")
    head_seq = session.exec(select(func.max(AuditEntry.seq))).one() or 0
    return CheckResult(sources.newest, problems, sources.store_error, head_seq)


# ---------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class Written:
    """What `write` did: the checkpoint written, or why it wrote none (`skipped`, or `refused`)."""

    checkpoint: Checkpoint | None = None
    location: str = ""
    skipped: str | None = None
    refused: str | None = None


def write(session: Session, store: ArchiveStore, key: CheckpointKey, *, actor: str, force: bool = False) -> Written:
    """Checkpoint the chain's head: sign it, put it in the store, record it in the table (caller commits).

    Skipped when the chain is empty, or (unless `force`) when the newest checkpoint already names the
    head under this key. Refused when the chain no longer holds the newest checkpoint's head: a
    checkpoint of a shortened chain would bury the evidence. The store is written first; when it
    fails the error propagates and nothing is recorded, so the next attempt writes it again.
    """
    sources = newest_checkpoints(session, store)
    if sources.store_error is not None:
        raise IntegrationError(f"cannot read the newest checkpoint from the archive store: {sources.store_error}")
    for item in sources.found:
        problem = tail_problem(session, item.checkpoint)
        if problem:
            return Written(refused=f"checkpoint {item.checkpoint.describe()} from the {item.source}: {problem}")
    head = session.exec(select(AuditEntry).order_by(col(AuditEntry.seq).desc()).limit(1)).first()
    if head is None:
        return Written(skipped="the audit chain is empty")
    current = (head.seq, head.hash, key.key_id)
    if not force and all(
        cp is not None and (cp.seq, cp.hash, cp.key_id) == current for cp in (sources.store, sources.table)
    ):
        return Written(checkpoint=sources.table, skipped="the head did not move since the last checkpoint")
    checkpoint = sign(key, seq=head.seq, hash=head.hash)
    text = json.dumps(checkpoint.document(), sort_keys=True, indent=2) + "\n"
    _put_json(store, public_key_key(key.key_id), key.public_pem())
    location = _put_json(store, object_key(checkpoint.seq), text)
    _put_json(store, LATEST_KEY, text)
    session.add(
        AuditCheckpoint(
            seq=checkpoint.seq,
            hash=checkpoint.hash,
            at=checkpoint.at,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
            location=location,
            created_by=actor,
        )
    )
    session.flush()
    return Written(checkpoint=checkpoint, location=location)


def checkpoint_now(settings: Settings, *, actor: str, force: bool = False) -> Written:
    """`write` in a transaction of its own, with the configured key (made on first use) and store."""
    from orchestrator.audit.keys import checkpoint_key
    from orchestrator.db import session_scope

    key = checkpoint_key(create=True, settings=settings)
    assert key is not None  # create=True always yields a key
    store = store_for(settings)
    with session_scope() as session:
        return write(session, store, key, actor=actor, force=force)
