"""OSV advisories and version ranges: which pinned versions an advisory or a policy block covers.

Advisories come from a directory of OSV JSON files (one advisory per file). Ranges are evaluated with
real version semantics: PEP 440 through `packaging` for PyPI, semantic versioning through `semver` for
npm and SEMVER ranges. Never string comparison: "10.0" is newer than "9.9".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def _severity(raw: dict[str, Any], affected: dict[str, Any] | None = None) -> Severity:
    candidates: list[Any] = []
    if affected:
        candidates += [
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


_NPM_COMPARATOR_RE = re.compile(r"^(>=|<=|>|<|=|\^|~)?\s*v?([0-9xX*]+(?:\.[0-9xX*]+){0,2}(?:[-+][\w.+-]*)?)$")


def _npm_comparator(token: str, version: semver.Version) -> bool:
    m = _NPM_COMPARATOR_RE.match(token)
    if not m:
        raise ValueError(f"unsupported npm range {token!r}")
    op, text = m.group(1) or "=", m.group(2)
    core = text.split("-")[0].split("+")[0].split(".")
    # How many leading parts are concrete numbers: `1.2.x` and `1.2` both fix two.
    fixed = next((i for i, p in enumerate(core) if p.lower() in ("x", "*")), len(core))
    nums = [int(core[i]) if i < fixed else 0 for i in range(3)]
    base = parse_semver(text) if fixed == 3 else semver.Version(*nums)
    assert base is not None
    if fixed == 0:
        return op in ("=", ">=", "<=", "^", "~")
    if op == "=" and fixed < 3:
        return [version.major, version.minor, version.patch][:fixed] == nums[:fixed]
    if op == "^":
        upper = (
            base.bump_major()
            if nums[0] or fixed == 1
            else base.bump_minor()
            if nums[1] or fixed == 2
            else base.bump_patch()
        )
        return base <= version < upper
    if op == "~":
        upper = base.bump_major() if fixed == 1 else base.bump_minor()
        return base <= version < upper
    return {
        "=": version == base,
        ">": version > base,
        ">=": version >= base,
        "<": version < base,
        "<=": version <= base,
    }[op]


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
    version = parse_semver(version_text)
    if version is None:
        return False
    for alternative in spec.split("||"):
        alternative = re.sub(r"(>=|<=|>|<|=|\^|~)\s+", r"\1", alternative.strip())
        tokens = alternative.split()
        if " - " in alternative:
            low, high = (t.strip() for t in alternative.split(" - ", 1))
            tokens = [f">={low}", f"<={high}"]
        try:
            if all(_npm_comparator(t, version) for t in tokens or ["*"]):
                return True
        except ValueError:
            continue
    return False
