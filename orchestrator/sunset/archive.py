"""Archives of retired apps: build, store, verify and purge.

An archive is a tar.gz of the app's records — audit entries, reviews, approvals, credential
ledger, deadlines — as JSON lines, plus its runtime logs (`LOG_SOURCE_DIR/<app>/`), and a
`manifest.json` listing the SHA-256 and size of every member, the counts, the time range covered and
who archived it, when and why. The archive's own SHA-256 (and the manifest's) go into the audit
chain; `verify` recomputes all of them. Purging honours the app's legal hold.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from orchestrator.approvals.models import ApprovalRequest
from orchestrator.audit import service as audit
from orchestrator.audit.actions import AuditAction
from orchestrator.audit.models import AuditEntry
from orchestrator.catalog.models import MicroApp
from orchestrator.clock import as_utc, utcnow
from orchestrator.credentials.models import Credential
from orchestrator.integrations.archive import ArchiveStore
from orchestrator.sunset.models import ArchiveRecord, ArchiveStatus
from orchestrator.timers.models import Deadline

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Tables of other features that hold per-app rows worth keeping, looked up by name so the archive
# does not depend on modules that may not be installed.
_OPTIONAL_TABLES = ("review", "reviews")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, sort_keys=True, default=str, ensure_ascii=False) + "\n" for r in rows).encode()


def _times(rows: list[dict[str, Any]], *keys: str) -> Iterator[str]:
    for row in rows:
        for key in keys:
            if row.get(key):
                yield str(row[key])


def _optional_rows(session: Session, app_id: str) -> tuple[str | None, list[dict[str, Any]]]:
    from orchestrator.tables import metadata

    for name in _OPTIONAL_TABLES:
        table = metadata.tables.get(name)
        if table is not None and "app_id" in table.c:
            result = session.execute(sa_select(table).where(table.c.app_id == app_id))
            return name, [json.loads(json.dumps(dict(r._mapping), default=str)) for r in result]
    return None, []


def _log_files(log_root: Path, app_id: str) -> list[tuple[str, Path]]:
    base = log_root / app_id
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.rglob("*")):
        # Symlinks could point outside the app's log directory; only regular files are archived.
        if path.is_file() and not path.is_symlink():
            found.append((f"logs/{path.relative_to(base).as_posix()}", path))
    return found


@dataclass
class BuiltArchive:
    """A tar.gz written to a temporary file, with its digests and manifest."""

    path: Path
    sha256: str
    size: int
    manifest: dict[str, Any]
    manifest_sha256: str


def build(
    session: Session, app: MicroApp, *, actor: str, reason: str, log_root: Path, workdir: Path, now: datetime
) -> BuiltArchive:
    """Collect the app's records and logs into `workdir/<app>.tar.gz` with a manifest of digests."""
    records: dict[str, list[dict[str, Any]]] = {
        "audit.jsonl": [audit.as_record(e) for e in audit.entries(session, app_id=app.id)],
        "approvals.jsonl": [
            r.model_dump(mode="json")
            for r in session.exec(select(ApprovalRequest).where(ApprovalRequest.app_id == app.id))
        ],
        "credentials.jsonl": [
            r.model_dump(mode="json") for r in session.exec(select(Credential).where(Credential.app_id == app.id))
        ],
        "deadlines.jsonl": [
            r.model_dump(mode="json")
            for r in session.exec(select(Deadline).where(Deadline.app_id == app.id).order_by(col(Deadline.id)))
        ],
    }
    review_table, review_rows = _optional_rows(session, app.id)
    records["reviews.jsonl"] = review_rows
    blobs = {name: _jsonl(rows) for name, rows in records.items()}
    blobs["app.json"] = json.dumps(app.model_dump(mode="json"), sort_keys=True, indent=2).encode()
    logs = _log_files(log_root, app.id)
    members = [{"name": n, "sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in blobs.items()]
    members += [{"name": n, "sha256": _sha256_file(p), "size": p.stat().st_size} for n, p in logs]
    stamps = [
        *_times(records["audit.jsonl"], "at"),
        *_times(records["approvals.jsonl"], "created_at", "decided_at"),
        *_times(records["credentials.jsonl"], "issued_at", "revoked_at"),
    ]
    stamps += [datetime.fromtimestamp(p.stat().st_mtime).astimezone().isoformat() for _, p in logs]
    normalised = sorted(as_utc(datetime.fromisoformat(s)).isoformat() for s in stamps)
    manifest = {
        "format": FORMAT_VERSION,
        "app": {"id": app.id, "name": app.name, "owner": app.owner_email, "data_class": app.data_class.value},
        "created_at": now.isoformat(),
        "created_by": actor,
        "reason": reason,
        "counts": {
            "audit_entries": len(records["audit.jsonl"]),
            "approvals": len(records["approvals.jsonl"]),
            "credentials": len(records["credentials.jsonl"]),
            "deadlines": len(records["deadlines.jsonl"]),
            "reviews": len(review_rows),
            "log_files": len(logs),
            "log_bytes": sum(p.stat().st_size for _, p in logs),
        },
        "reviews_table": review_table,
        "time_range": {"from": normalised[0] if normalised else None, "to": normalised[-1] if normalised else None},
        "members": members,
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, indent=2).encode()
    path = workdir / f"{app.id}.tar.gz"
    mtime = int(now.timestamp())
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(MANIFEST, manifest_bytes), *blobs.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, source in logs:
            tar.add(source, arcname=name, recursive=False)
    return BuiltArchive(
        path=path,
        sha256=_sha256_file(path),
        size=path.stat().st_size,
        manifest=manifest,
        manifest_sha256=hashlib.sha256(manifest_bytes).hexdigest(),
    )


def record(
    session: Session, app: MicroApp, built: BuiltArchive, *, key: str, uri: str, actor: str, reason: str,
    retain_until: datetime | None,
) -> ArchiveRecord:  # fmt: skip
    """Remember a stored archive and put its digests into the audit chain."""
    row = ArchiveRecord(
        app_id=app.id,
        key=key,
        uri=uri,
        sha256=built.sha256,
        size=built.size,
        manifest_sha256=built.manifest_sha256,
        manifest=built.manifest,
        created_by=actor,
        reason=reason,
        retain_until=retain_until,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.archive_created,
        app_id=app.id,
        reason=reason,
        data={
            "archive_id": row.id,
            "uri": uri,
            "sha256": built.sha256,
            "manifest_sha256": built.manifest_sha256,
            "size": built.size,
            "counts": built.manifest["counts"],
            "retain_until": retain_until,
        },
    )
    return row


@dataclass
class VerifyReport:
    """What `verify` found for one archive; ok when `problems` is empty."""

    archive_id: int
    uri: str
    checked_members: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every digest matched."""
        return not self.problems


def stored_archives(session: Session, app_id: str) -> list[ArchiveRecord]:
    """The app's archives that have not been purged, oldest first."""
    query = select(ArchiveRecord).where(ArchiveRecord.app_id == app_id, ArchiveRecord.status == ArchiveStatus.stored)
    return list(session.exec(query.order_by(col(ArchiveRecord.id))).all())


def verify(session: Session, row: ArchiveRecord, store: ArchiveStore) -> VerifyReport:
    """Fetch the archive and recompute every digest: the file, the manifest and each member."""
    assert row.id is not None
    report = VerifyReport(archive_id=row.id, uri=row.uri)
    chained = session.exec(
        select(AuditEntry).where(AuditEntry.app_id == row.app_id, AuditEntry.action == AuditAction.archive_created)
    ).all()
    if not any(e.data.get("sha256") == row.sha256 and e.data.get("archive_id") == row.id for e in chained):
        report.problems.append("the archive's digest is not in the audit chain")
    with tempfile.TemporaryDirectory(prefix="archive-verify-") as tmp:
        local = Path(tmp) / "archive.tar.gz"
        store.fetch(row.key, local)
        if _sha256_file(local) != row.sha256:
            report.problems.append("archive file digest does not match the recorded SHA-256")
        try:
            _verify_members(local, row, report)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            report.problems.append(f"archive cannot be read: {exc}")
    return report


def _verify_members(local: Path, row: ArchiveRecord, report: VerifyReport) -> None:
    with tarfile.open(local, "r:gz") as tar:
        seen: dict[str, str] = {}
        manifest_bytes = b""
        for info in tar.getmembers():
            if not info.isfile():
                continue
            fh = tar.extractfile(info)
            data = fh.read() if fh else b""
            if info.name == MANIFEST:
                manifest_bytes = data
            else:
                seen[info.name] = hashlib.sha256(data).hexdigest()
    if hashlib.sha256(manifest_bytes).hexdigest() != row.manifest_sha256:
        report.problems.append("manifest.json digest does not match the recorded one")
    manifest = json.loads(manifest_bytes or b"{}")
    listed = {m["name"]: m["sha256"] for m in manifest.get("members", [])}
    for name, digest in listed.items():
        if name not in seen:
            report.problems.append(f"{name}: listed in the manifest but missing")
        elif seen[name] != digest:
            report.problems.append(f"{name}: SHA-256 mismatch")
        else:
            report.checked_members += 1
    for name in sorted(set(seen) - set(listed)):
        report.problems.append(f"{name}: present but not listed in the manifest")


def mark_purged(session: Session, row: ArchiveRecord, *, actor: str, reason: str, existed: bool) -> None:
    """Record that an archive was deleted from the store, in the audit chain too."""
    row.status = ArchiveStatus.purged
    row.purged_at = utcnow()
    session.add(row)
    audit.record(
        session,
        actor=actor,
        action=AuditAction.archive_purged,
        app_id=row.app_id,
        reason=reason,
        data={"archive_id": row.id, "uri": row.uri, "sha256": row.sha256, "object_existed": existed},
    )
