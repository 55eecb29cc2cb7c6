"""OSV advisories and version ranges: which pinned versions an advisory or a policy block covers.

Advisories come from a directory of OSV JSON files (one advisory per file). Ranges are evaluated with
real version semantics: PEP 440 through `packaging` for PyPI, semantic versioning through `semver` for
OSV SEMVER events, and npm ranges (`^`, `~`, hyphen, `||`, prereleases) through `node-semver`, a port of
npm's own library. Never string comparison: "10.0" is newer than "9.9".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nodesemver
import semver
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from orchestrator.reviews.checks.findings import Severity

_SEVERITY_WORDS = {**{s.value: s for s in Severity}, "moderate": Severity.medium}


def normalize_name(ecosystem: str, name: str) -> str:
    """Canonical package name: PEP 503 for PyPI, lower case for npm."""
    if ecosystem == "pypi":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name.strip().lower()


def parse_semver(text: str) -> semver.Version | None:
    """A semantic version from `1.2.3`, `v1.2`, `=1.2.3`; None when it is not one."""
    text = text.strip().lstrip("=v").strip()
    if text in ("0", ""):
        return semver.Version(0, 0, 0)
    try:
        return semver.Version.parse(text, optional_minor_and_patch=True)
    except (ValueError, TypeError):
        return None


def parse_version(ecosystem: str, text: str) -> Any:
    """A comparable version for the ecosystem, or None."""
    if ecosystem == "pypi":
        try:
            return Version(text)
        except InvalidVersion:
            return None
    return parse_semver(text)


@dataclass(frozen=True)
class Match:
    """An advisory that covers a pinned version."""

    advisory_id: str
    summary: str
    severity: Severity
    fixed: str | None


@dataclass
class Advisory:
    """One OSV advisory, reduced to what matching needs."""

    id: str
    summary: str
    severity: Severity
    affected: list[dict[str, Any]]


def advisory_severity(raw: dict[str, Any], affected: dict[str, Any] | None = None) -> Severity:
    """An advisory's severity: the affected entry's, else the advisory's word or CVSS score, else medium."""
    candidates: list[Any] = []
    if affected:
        candidates += [
            affected.get("severity") if isinstance(affected.get("severity"), str) else None,
            affected.get("database_specific", {}).get("severity"),
            affected.get("ecosystem_specific", {}).get("severity"),
        ]
    candidates += [raw.get("database_specific", {}).get("severity"), raw.get("severity")]
    for value in candidates:
        if isinstance(value, str) and value.lower() in _SEVERITY_WORDS:
            return _SEVERITY_WORDS[value.lower()]
        if isinstance(value, list):
            for item in value:
                score = item.get("score") if isinstance(item, dict) else None
                try:
                    number = float(score)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    continue
                for floor, severity in ((9, Severity.critical), (7, Severity.high), (4, Severity.medium)):
                    if number >= floor:
                        return severity
                return Severity.low
    return Severity.medium  # unknown severity: worth a human look, not an automatic failure


_severity = advisory_severity


def load_advisories(directory: Path | None) -> dict[tuple[str, str], list[Advisory]]:
    """Index the OSV files of a directory by (ecosystem, package name); unreadable files are ignored."""
    index: dict[tuple[str, str], list[Advisory]] = {}
    if directory is None or not directory.is_dir():
        return index
    for path in sorted(directory.rglob("*.json")):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(raw, dict) or "id" not in raw:
            continue
        adv = Advisory(str(raw["id"]), str(raw.get("summary", "")), _severity(raw), list(raw.get("affected") or []))
        for affected in adv.affected:
            package = affected.get("package") or {}
            ecosystem = str(package.get("ecosystem", "")).lower()
            if ecosystem in ("pypi", "npm") and package.get("name"):
                key = (ecosystem, normalize_name(ecosystem, str(package["name"])))
                if adv not in index.setdefault(key, []):
                    index[key].append(adv)
    return index


def _in_range(ecosystem: str, version: Any, rng: dict[str, Any]) -> tuple[bool, str | None]:
    kind = str(rng.get("type", "")).upper()
    if kind not in ("ECOSYSTEM", "SEMVER"):
        return False, None
    eco = "npm" if kind == "SEMVER" else ecosystem
    if eco != ecosystem:
        version = parse_version(eco, str(version))
        if version is None:
            return False, None
    parsed: list[tuple[Any, str, str]] = []
    for event in rng.get("events") or []:
        for kind_name in ("introduced", "fixed", "last_affected"):
            if kind_name in event:
                raw = str(event[kind_name])
                v = parse_version(eco, "0" if raw == "0" and eco == "pypi" else raw)
                if v is not None:
                    parsed.append((v, kind_name, raw))
    parsed.sort(key=lambda item: item[0])
    affected = False
    for v, kind_name, _raw in parsed:
        if kind_name == "introduced" and version >= v:
            affected = True
        elif kind_name == "fixed" and version >= v:
            affected = False
        elif kind_name == "last_affected" and version > v:
            affected = False
    fixed = next((raw for v, k, raw in parsed if k == "fixed" and v > version), None)
    return affected, fixed


def affected_by(advisory: Advisory, ecosystem: str, name: str, version_text: str) -> Match | None:
    """Whether `name==version_text` is covered by the advisory, with the first fixed version after it."""
    version = parse_version(ecosystem, version_text)
    for affected in advisory.affected:
        package = affected.get("package") or {}
        if str(package.get("ecosystem", "")).lower() != ecosystem:
            continue
        if normalize_name(ecosystem, str(package.get("name", ""))) != name:
            continue
        severity = _severity({"severity": advisory.severity}, affected)
        fixed_candidates = []
        hit = version_text in [str(v) for v in affected.get("versions") or []]
        for rng in affected.get("ranges") or []:
            if version is None:
                break
            in_range, fixed = _in_range(ecosystem, version, rng)
            hit = hit or in_range
            if in_range and fixed:
                fixed_candidates.append(fixed)
        if hit:
            fixed = min(fixed_candidates, key=lambda f: parse_version(ecosystem, f)) if fixed_candidates else None
            return Match(advisory.id, advisory.summary, severity, fixed)
    return None


def version_in_range(ecosystem: str, version_text: str, spec: str) -> bool:
    """Whether a pinned version satisfies a policy range (PEP 440 specifier, or an npm range)."""
    spec = spec.strip()
    if ecosystem == "pypi":
        version = parse_version("pypi", version_text)
        if version is None:
            return False
        if re.match(r"^[0-9]", spec):
            spec = f"=={spec}"
        try:
            return version in SpecifierSet(re.sub(r"\s+(?=[<>=!~])", ",", spec), prereleases=True)
        except InvalidSpecifier:
            return False
    return npm_satisfies(version_text, spec)


def npm_satisfies(version_text: str, spec: str) -> bool:
    """npm's own range semantics (node-semver, ported): `^0.x`, hyphen ranges, `||`, prerelease rules."""
    try:
        return bool(nodesemver.satisfies(version_text.strip(), spec.strip() or "*", loose=False))
    except (ValueError, TypeError):
        return False


def known_versions(ecosystem: str, advisories: list[Advisory], name: str, extra: list[str] | None = None) -> list[str]:
    """Every version of a package the advisories name (listed affected versions, range boundaries), plus `extra`."""
    seen: dict[Any, str] = {}
    for text in extra or []:
        parsed = parse_version(ecosystem, text)
        if parsed is not None:
            seen.setdefault(parsed, text)
    for adv in advisories:
        for affected in adv.affected:
            package = affected.get("package") or {}
            if str(package.get("ecosystem", "")).lower() != ecosystem:
                continue
            if normalize_name(ecosystem, str(package.get("name", ""))) != name:
                continue
            texts = [str(v) for v in affected.get("versions") or []]
            for rng in affected.get("ranges") or []:
                for event in rng.get("events") or []:
                    texts += [str(event[k]) for k in ("introduced", "fixed", "last_affected") if k in event]
            for text in texts:
                if text == "0":
                    continue
                parsed = parse_version(ecosystem, text)
                if parsed is not None:
                    seen.setdefault(parsed, text)
    return [seen[v] for v in sorted(seen)]


def admitted_versions(ecosystem: str, spec: str, versions: list[str]) -> list[str] | None:
    """The versions a requirement's range admits, as an installer would pick them; None for an unreadable range.

    PyPI: a PEP 440 specifier set (prereleases only when the specifier names one or nothing else fits,
    as pip does). npm: node-semver's `satisfies`, which leaves prereleases out unless a comparator has one
    on the same major.minor.patch.
    """
    spec = spec.strip()
    if ecosystem == "pypi":
        try:
            specifiers = SpecifierSet(re.sub(r"\s+(?=[<>=!~])", ",", spec))
        except InvalidSpecifier:
            return None
        return [str(v) for v in specifiers.filter(versions)]
    try:
        nodesemver.make_range(spec or "*", False)
    except (ValueError, TypeError):
        return None
    return [v for v in versions if npm_satisfies(v, spec)]
