"""Advisory sets: which OSV advisories the dependency check matches against, as of which date, and a fast index.

Per ecosystem the first source that holds advisories for it wins:

1. `ADVISORIES_DIR`, a directory of OSV JSON files (an operator's own mirror, or a test's);
2. a synced set, `<data dir>/advisories/<ecosystem>.json`, written by `orchestrator advisories sync`;
3. the shipped snapshot (PyPI only): the PyPA advisory database of 2024-10-10, package data next to this
   module (CC-BY 4.0; see advisory_data/ATTRIBUTION.md).

A set file holds the advisories reduced to what version matching needs, with the set's source, date and
count. The shipped archive (YAML) is parsed at first use and cached in that format under
`<data dir>/advisories/cache/`; every process also keeps the sets it read in memory, keyed by file and
modification time, so a review pays for loading them once. A set's date is the newest `modified` time of
its advisories: how current the data is, not when it was copied.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from orchestrator.reviews.checks.advisories import Advisory, advisory_severity, normalize_name

ECOSYSTEMS = ("pypi", "npm")
ECOSYSTEM_LABELS = {"pypi": "PyPI", "npm": "npm"}
SET_FORMAT = 1
DATA_DIR = Path(__file__).parent / "advisory_data"
SHIPPED_ARCHIVE = DATA_DIR / "pypa-advisory-db-2024-10-10.tar.gz"
SHIPPED_SOURCE = "pypa-advisory-db (shipped snapshot)"


@dataclass(frozen=True)
class SetInfo:
    """What one advisory set is: ecosystem, where it came from, how current and how big."""

    ecosystem: str
    source: str
    date: str | None  # ISO date of the newest advisory modification
    count: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form for review stats and the API."""
        return {"ecosystem": self.ecosystem, "source": self.source, "date": self.date, "advisories": self.count}


@dataclass
class AdvisoryIndex:
    """Advisories by (ecosystem, normalised package name), and the sets they came from."""

    by_package: dict[tuple[str, str], list[Advisory]] = field(default_factory=dict)
    sets: list[SetInfo] = field(default_factory=list)

    def has(self, ecosystem: str) -> bool:
        """Whether any advisories are loaded for the ecosystem."""
        return any(s.ecosystem == ecosystem and s.count for s in self.sets)

    def describe(self, ecosystems: list[str] | None = None) -> dict[str, Any]:
        """The `advisories` block of review stats: the sets used, and plain notes on what is missing."""
        wanted = ecosystems if ecosystems is not None else list(ECOSYSTEMS)
        missing = [e for e in ECOSYSTEMS if e in wanted and not self.has(e)]
        return {
            "sets": [s.to_dict() for s in self.sets],
            "missing": missing,
            "notes": [f"no advisories for {ECOSYSTEM_LABELS[e]}" for e in missing],
        }

    def summary_line(self) -> str:
        """One line for the console: `PyPI: pypa-advisory-db … 2024-10-10 (2661); no advisories for npm`."""
        parts = [
            f"{ECOSYSTEM_LABELS.get(s.ecosystem, s.ecosystem)}: {s.source} {s.date or 'undated'} ({s.count})"
            for s in self.sets
        ]
        parts += [f"no advisories for {ECOSYSTEM_LABELS[e]}" for e in ECOSYSTEMS if not self.has(e)]
        return "; ".join(parts)


def _iso_date(value: Any) -> str | None:
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    if isinstance(value, str) and len(value) >= 10:
        try:
            return date.fromisoformat(value[:10]).isoformat()
        except ValueError:
            return None
    return None


def reduce_advisory(raw: Any) -> dict[str, Any] | None:
    """An OSV advisory reduced to id, summary, severity, modified date and its PyPI/npm `affected` entries."""
    if not isinstance(raw, dict) or not raw.get("id"):
        return None
    affected = []
    for entry in raw.get("affected") or []:
        if not isinstance(entry, dict):
            continue
        package = entry.get("package") or {}
        ecosystem = str(package.get("ecosystem", "")).lower()
        if ecosystem not in ECOSYSTEMS or not package.get("name"):
            continue
        ranges = [
            {
                "type": str(r.get("type", "")).upper(),
                "events": [{k: str(v) for k, v in e.items()} for e in r.get("events") or []],
            }
            for r in entry.get("ranges") or []
            if isinstance(r, dict) and str(r.get("type", "")).upper() in ("ECOSYSTEM", "SEMVER")
        ]
        affected.append(
            {
                "package": {"ecosystem": ecosystem, "name": str(package["name"])},
                "ranges": ranges,
                "versions": [str(v) for v in entry.get("versions") or []],
                "severity": advisory_severity(raw, entry).value,
            }
        )
    if not affected:
        return None
    summary = str(raw.get("summary") or raw.get("details") or "").strip().splitlines()
    return {
        "id": str(raw["id"]),
        "summary": summary[0][:300] if summary else "",
        "severity": advisory_severity(raw).value,
        "modified": _iso_date(raw.get("modified")),
        "affected": affected,
    }


def set_document(ecosystem: str, source: str, reduced: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A set file's content: its advisories (reduced) for one ecosystem, with source, date and count."""
    mine = [a for a in reduced if any(x["package"]["ecosystem"] == ecosystem for x in a["affected"])]
    dates = [a["modified"] for a in mine if a.get("modified")]
    return {
        "format": SET_FORMAT,
        "ecosystem": ecosystem,
        "source": source,
        "date": max(dates) if dates else None,
        "count": len(mine),
        **extra,
        "advisories": mine,
    }


def write_set(path: Path, document: dict[str, Any]) -> None:
    """Write a set file atomically: a reader sees the old file or the new one, never half of either."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_memo: dict[tuple[str, int, int], tuple[SetInfo, list[Advisory]]] = {}


def _from_document(document: dict[str, Any]) -> tuple[SetInfo, list[Advisory]]:
    advisories = [
        Advisory(a["id"], a.get("summary", ""), advisory_severity({"severity": a.get("severity")}), a["affected"])
        for a in document.get("advisories") or []
    ]
    info = SetInfo(str(document["ecosystem"]), str(document.get("source", "")), document.get("date"), len(advisories))
    return info, advisories


def read_set(path: Path) -> tuple[SetInfo, list[Advisory]] | None:
    """A set file, or None when it is missing or unreadable (kept in memory per modification time)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key not in _memo:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            if document.get("format") != SET_FORMAT:
                return None
            _memo[key] = _from_document(document)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
    return _memo[key]


def parse_shipped_archive(archive: Path = SHIPPED_ARCHIVE) -> list[dict[str, Any]]:
    """The reduced advisories of the shipped PyPA archive (YAML files under `vulns/`)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    reduced = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith((".yaml", ".yml", ".json"))):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            try:
                raw = yaml.load(handle.read(), Loader=loader)  # noqa: S506 - a safe loader
            except yaml.YAMLError:
                continue
            item = reduce_advisory(raw)
            if item:
                reduced.append(item)
    return reduced


def shipped_set(cache_dir: Path | None) -> tuple[SetInfo, list[Advisory]]:
    """The shipped PyPI snapshot, from the cached index when there is one (else parsed, and cached)."""
    stat = SHIPPED_ARCHIVE.stat()
    cached = cache_dir / f"{SHIPPED_ARCHIVE.name.removesuffix('.tar.gz')}-{stat.st_size}.json" if cache_dir else None
    if cached is not None:
        loaded = read_set(cached)
        if loaded is not None:
            return loaded
    key = (str(SHIPPED_ARCHIVE), stat.st_mtime_ns, stat.st_size)
    if key not in _memo:
        document = set_document("pypi", SHIPPED_SOURCE, parse_shipped_archive())
        if cached is not None:
            try:
                write_set(cached, document)
            except OSError:
                pass  # a read-only data directory: the index lives in memory only
        _memo[key] = _from_document(document)
    return _memo[key]


def directory_sets(directory: Path) -> dict[str, tuple[SetInfo, list[Advisory]]]:
    """Per ecosystem, the OSV JSON files of a directory (unreadable files are ignored)."""
    reduced = []
    for path in sorted(directory.rglob("*.json")):
        try:
            item = reduce_advisory(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
        if item:
            reduced.append(item)
    out = {}
    for ecosystem in ECOSYSTEMS:
        document = set_document(ecosystem, f"ADVISORIES_DIR {directory}", reduced)
        if document["count"]:
            out[ecosystem] = _from_document(document)
    return out


def synced_path(data_dir: Path, ecosystem: str) -> Path:
    """Where `orchestrator advisories sync` keeps an ecosystem's set."""
    return data_dir / "advisories" / f"{ecosystem}.json"


def user_cache_dir() -> Path | None:
    """Where a maker's laptop (no data directory) caches the shipped set's index: the user's cache folder.

    Parsing the shipped archive takes seconds; a pre-commit hook run from an app folder must not pay
    that on every commit. None when there is no home directory to put it in.
    """
    base = os.environ.get("XDG_CACHE_HOME")
    try:
        root = Path(base) if base else Path.home() / ".cache"
    except RuntimeError:  # no home directory
        return None
    return root / "microapp-orchestrator" / "advisories"


def build_index(*, advisories_dir: Path | None, data_dir: Path | None, shipped: bool = True) -> AdvisoryIndex:
    """The advisory index for a review: per ecosystem ADVISORIES_DIR, else the synced set, else the shipped one."""
    chosen: dict[str, tuple[SetInfo, list[Advisory]]] = {}
    if advisories_dir is not None and advisories_dir.is_dir():
        chosen.update(directory_sets(advisories_dir))
    for ecosystem in ECOSYSTEMS:
        if ecosystem not in chosen and data_dir is not None:
            loaded = read_set(synced_path(data_dir, ecosystem))
            if loaded is not None and loaded[0].count:
                chosen[ecosystem] = loaded
    if shipped and "pypi" not in chosen:
        has_data_dir = data_dir is not None and data_dir.is_dir()
        cache_dir = data_dir / "advisories" / "cache" if data_dir is not None and has_data_dir else user_cache_dir()
        chosen["pypi"] = shipped_set(cache_dir)
    key = tuple((e, chosen[e][0], id(chosen[e][1])) for e in ECOSYSTEMS if e in chosen)
    if key not in _built:
        _built.clear()  # only the latest combination is kept: sets are replaced, not accumulated
        # The sets are kept with the index so that their ids, part of the key, cannot be reused meanwhile.
        _built[key] = (_index_of(chosen), chosen)
    return _built[key][0]


_built: dict[tuple[Any, ...], tuple[AdvisoryIndex, dict[str, tuple[SetInfo, list[Advisory]]]]] = {}


def _index_of(chosen: dict[str, tuple[SetInfo, list[Advisory]]]) -> AdvisoryIndex:
    index = AdvisoryIndex()
    for ecosystem in ECOSYSTEMS:
        if ecosystem not in chosen:
            continue
        info, advisories = chosen[ecosystem]
        index.sets.append(info)
        for adv in advisories:
            names = {
                normalize_name(ecosystem, str((a.get("package") or {}).get("name", "")))
                for a in adv.affected
                if str((a.get("package") or {}).get("ecosystem", "")).lower() == ecosystem
            }
            for name in names:
                index.by_package.setdefault((ecosystem, name), []).append(adv)
    return index


def default_index() -> AdvisoryIndex:
    """The index from the process's settings: ADVISORIES_DIR and the data directory."""
    value = os.environ.get("ADVISORIES_DIR")
    from orchestrator.config import get_settings

    settings = get_settings()
    directory = Path(value) if value else settings.advisories_dir
    return build_index(advisories_dir=directory, data_dir=settings.data_dir)
