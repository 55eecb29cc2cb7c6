"""`orchestrator advisories sync`: replace the advisory sets with OSV's current exports, atomically.

Per ecosystem (PyPI and npm by default): download the export (orchestrator.integrations.osv), open it as
a zip and test every member's CRC, read its advisories (withdrawn ones are left out) and write the set
file (`<data dir>/advisories/<ecosystem>.json`) with an atomic rename. A download that fails, a zip that
is truncated or corrupt, or an export with far fewer advisories than the set it would replace (a partial
export) keeps the old set: reviews go on with what they had, and the report says why. Used by the CLI
and by the scheduler's daily `sync-advisories` job on the leader.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.config import Settings
from orchestrator.integrations.osv import DownloadFailed, download_export
from orchestrator.logs import get_logger
from orchestrator.reviews.checks.advisory_sets import (
    ECOSYSTEM_LABELS,
    read_set,
    reduce_advisory,
    set_document,
    synced_path,
    write_set,
)

log = get_logger(__name__)

# An export with fewer advisories than this share of the current set is taken for a partial one.
MIN_SHARE_OF_CURRENT = 0.5


@dataclass(frozen=True)
class SyncOutcome:
    """What happened to one ecosystem's set."""

    ecosystem: str
    replaced: bool
    count: int  # advisories in the set now in use (the new one, or the old one kept)
    date: str | None
    error: str | None = None
    previous_count: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the CLI."""
        return {
            "ecosystem": self.ecosystem,
            "replaced": self.replaced,
            "advisories": self.count,
            "date": self.date,
            "previous_advisories": self.previous_count,
            "error": self.error,
        }


class BadExport(Exception):
    """The downloaded file is not a whole, readable export."""


def read_export(path: Path) -> list[dict[str, Any]]:
    """The reduced advisories of an OSV export zip; BadExport when it is truncated, corrupt or empty."""
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            if broken is not None:
                raise BadExport(f"corrupt member {broken}")
            reduced = []
            for info in archive.infolist():
                if not info.filename.endswith(".json"):
                    continue
                try:
                    raw = json.loads(archive.read(info))
                except ValueError as exc:
                    raise BadExport(f"{info.filename} is not JSON: {exc}") from None
                if isinstance(raw, dict) and raw.get("withdrawn"):
                    continue
                item = reduce_advisory(raw)
                if item:
                    reduced.append(item)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise BadExport(f"not a readable zip ({exc})") from None
    if not reduced:
        raise BadExport("no advisories in the export")
    return reduced


def sync_ecosystem(settings: Settings, ecosystem: str, *, force: bool = False) -> SyncOutcome:
    """Fetch, verify and (if whole) install one ecosystem's set; never raises for a bad download."""
    key = ecosystem.lower()
    assert settings.data_dir is not None
    target = synced_path(settings.data_dir, key)
    current = read_set(target)
    old_count = current[0].count if current else None
    old_date = current[0].date if current else None

    def kept(error: str) -> SyncOutcome:
        log.warning("advisory sync kept the old set", ecosystem=key, error=error[:300])
        return SyncOutcome(key, False, old_count or 0, old_date, error, old_count)

    try:
        fetched = download_export(
            settings.advisories_url_template,
            ECOSYSTEM_LABELS.get(key, ecosystem),
            target.parent,
            timeout_seconds=settings.advisories_sync_timeout_seconds,
        )
    except DownloadFailed as exc:
        return kept(str(exc))
    try:
        reduced = read_export(fetched.path)
    except BadExport as exc:
        return kept(f"{fetched.url}: {exc}")
    finally:
        fetched.path.unlink(missing_ok=True)
    document = set_document(
        key,
        f"OSV export {fetched.url}",
        reduced,
        fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
        url=fetched.url,
    )
    if not document["count"]:
        return kept(f"{fetched.url}: no {key} advisories in the export")
    if old_count and document["count"] < old_count * MIN_SHARE_OF_CURRENT and not force:
        return kept(
            f"{fetched.url}: {document['count']} advisories against {old_count} in the current set "
            "(a partial export?); --force installs it anyway"
        )
    write_set(target, document)
    log.info("advisory set replaced", ecosystem=key, advisories=document["count"], date=document["date"])
    return SyncOutcome(key, True, document["count"], document["date"], None, old_count)


def sync_advisories(
    settings: Settings, ecosystems: list[str] | None = None, *, force: bool = False
) -> list[SyncOutcome]:
    """Sync every ecosystem of ADVISORIES_ECOSYSTEMS (or those given); one failure does not stop the others."""
    wanted = ecosystems or [e.strip() for e in settings.advisories_ecosystems.split(",") if e.strip()]
    return [sync_ecosystem(settings, ecosystem, force=force) for ecosystem in wanted]
