"""Dependency check: what the app depends on, against the policy's block list and OSV advisories.

Parses requirements*.txt, pyproject.toml (PEP 621 and Poetry), package.json and package-lock.json
(lockfile versions 1, 2 and 3). A finding names the package, the pinned version, the advisory, its
severity and the first fixed version. Unpinned dependencies are a finding for restricted and regulated
apps, whose reviews must be reproducible.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from orchestrator.catalog.policy import Policy
from orchestrator.reviews.checks.advisories import (
    Advisory,
    admitted_versions,
    affected_by,
    known_versions,
    normalize_name,
    version_in_range,
)
from orchestrator.reviews.checks.advisory_sets import ECOSYSTEM_LABELS, ECOSYSTEMS, AdvisoryIndex, build_index
from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint

CHECK = "dependencies"
_STRICT_CLASSES = ("restricted", "regulated")
_EXACT_SEMVER_RE = re.compile(r"^=?v?\d+\.\d+\.\d+(?:[-+][\w.+-]+)?$")
_POETRY_EXACT_RE = re.compile(r"^(?:==?)?\s*\d+(?:\.\d+)*(?:[-+.]?\w+)*$")


@dataclass(frozen=True)
class Dependency:
    """One declared or locked dependency."""

    ecosystem: str  # pypi | npm
    name: str  # normalised
    version: str | None  # the pinned version, None when only a range is declared
    spec: str  # what the file says
    file: str
    locked: bool = False


def is_dependency_file(rel: str) -> bool:
    """Whether a path (relative, POSIX) is one of the manifests this check parses."""
    name = PurePosixPath(rel).name
    return (
        (name.startswith("requirements") and name.endswith(".txt"))
        or name
        in (
            "pyproject.toml",
            "package.json",
            "package-lock.json",
        )
        or (PurePosixPath(rel).parent.name == "requirements" and name.endswith(".txt"))
    )


def _pep508(line: str, file: str) -> Dependency | None:
    try:
        req = Requirement(line)
    except InvalidRequirement:
        return None
    specs = list(req.specifier)
    version = None
    if len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version:
        version = specs[0].version
    return Dependency("pypi", normalize_name("pypi", req.name), version, str(req.specifier), file)


def parse_requirements(text: str, file: str) -> list[Dependency]:
    """Dependencies from a pip requirements file (options, includes and URLs are ignored)."""
    deps = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-", "git+", "http:", "https:", "file:", ".", "/")):
            continue
        dep = _pep508(line, file)
        if dep:
            deps.append(dep)
    return deps


def _poetry(name: str, constraint: Any, file: str) -> Dependency | None:
    if name.lower() == "python":
        return None
    if isinstance(constraint, dict):
        constraint = constraint.get("version", "*")
    if not isinstance(constraint, str):
        return None
    constraint = constraint.strip()
    exact = _POETRY_EXACT_RE.match(constraint) is not None
    version = constraint.lstrip("=").strip() if exact else None
    return Dependency("pypi", normalize_name("pypi", name), version, constraint, file)


def parse_pyproject(text: str, file: str) -> list[Dependency]:
    """Dependencies from PEP 621 tables and Poetry's dependency tables."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    deps: list[Dependency] = []
    project = data.get("project") or {}
    lines = list(project.get("dependencies") or [])
    for extra in (project.get("optional-dependencies") or {}).values():
        lines += list(extra or [])
    deps += [d for d in (_pep508(str(line), file) for line in lines) if d]
    poetry = (data.get("tool") or {}).get("poetry") or {}
    tables = [poetry.get("dependencies") or {}, poetry.get("dev-dependencies") or {}]
    tables += [(group or {}).get("dependencies") or {} for group in (poetry.get("group") or {}).values()]
    for table in tables:
        deps += [d for d in (_poetry(n, c, file) for n, c in table.items()) if d]
    return deps


def parse_package_json(text: str, file: str) -> list[Dependency]:
    """Dependencies from package.json (all four dependency maps)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    deps = []
    for key in ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies"):
        for name, spec in (data.get(key) or {}).items():
            spec = str(spec).strip()
            version = spec.lstrip("=v") if _EXACT_SEMVER_RE.match(spec) else None
            deps.append(Dependency("npm", normalize_name("npm", name), version, spec, file))
    return deps


def _lock_v1(tree: dict[str, Any], file: str, out: list[Dependency]) -> None:
    for name, info in tree.items():
        if isinstance(info, dict) and info.get("version"):
            out.append(Dependency("npm", normalize_name("npm", name), str(info["version"]), "", file, locked=True))
            _lock_v1(info.get("dependencies") or {}, file, out)


def parse_package_lock(text: str, file: str) -> list[Dependency]:
    """Locked versions from package-lock.json v1 (`dependencies`) or v2/v3 (`packages`)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    deps: list[Dependency] = []
    packages = data.get("packages")
    if isinstance(packages, dict):
        for path, info in packages.items():
            if not path or not isinstance(info, dict) or not info.get("version") or info.get("link"):
                continue
            name = info.get("name") or path.rsplit("node_modules/", 1)[-1]
            deps.append(Dependency("npm", normalize_name("npm", name), str(info["version"]), "", file, locked=True))
        return deps
    _lock_v1(data.get("dependencies") or {}, file, deps)
    return deps


def parse_dependency_file(rel: str, text: str) -> list[Dependency]:
    """Dispatch on the file name."""
    name = PurePosixPath(rel).name
    if name == "pyproject.toml":
        return parse_pyproject(text, rel)
    if name == "package.json":
        return parse_package_json(text, rel)
    if name == "package-lock.json":
        return parse_package_lock(text, rel)
    return parse_requirements(text, rel)


def _finding(rule: str, dep: Dependency, severity: Severity, message: str, **extra: Any) -> Finding:
    identity = f"{rule}:{dep.ecosystem}:{dep.name}:{dep.version or dep.spec}:{extra.get('advisory', '')}"
    return Finding(
        check=CHECK,
        rule=rule,
        file=dep.file,
        line=None,
        severity=severity,
        fingerprint=fingerprint(identity),
        preview=f"{dep.name}=={dep.version}" if dep.version else f"{dep.name} {dep.spec or '(any version)'}",
        message=message,
        extra={"package": dep.name, "ecosystem": dep.ecosystem, "version": dep.version, **extra},
    )


def advisories_dir_from_env() -> Path | None:
    """`ADVISORIES_DIR` from the environment (or the settings' `.env`), if set."""
    value = os.environ.get("ADVISORIES_DIR")
    if value:
        return Path(value)
    from orchestrator.config import get_settings

    return get_settings().advisories_dir


def _blocked_findings(dep: Dependency, policy: Policy) -> list[Finding]:
    findings = []
    for blocked in policy.blocked_dependencies:
        if blocked.ecosystem not in ("any", dep.ecosystem) or normalize_name(dep.ecosystem, blocked.name) != dep.name:
            continue
        if blocked.versions and dep.version and not version_in_range(dep.ecosystem, dep.version, blocked.versions):
            continue
        certain = not blocked.versions or dep.version is not None
        why = f": {blocked.reason}" if blocked.reason else ""
        findings.append(
            _finding(
                "blocked-dependency" if certain else "possibly-blocked-dependency",
                dep,
                Severity.high if certain else Severity.medium,
                f"{dep.name} is blocked by policy{why}"
                if certain
                else f"{dep.name} {dep.spec} may resolve to a blocked version ({blocked.versions}){why}",
                blocked_versions=blocked.versions,
            )
        )
    return findings


def _pin_findings(dep: Dependency, version: str, advisories: list[Advisory]) -> list[Finding]:
    findings = []
    for adv in advisories:
        match = affected_by(adv, dep.ecosystem, dep.name, version)
        if match:
            fix = f"; fixed in {match.fixed}" if match.fixed else "; no fixed version"
            findings.append(
                _finding(
                    "vulnerable-dependency",
                    dep,
                    match.severity,
                    f"{dep.name} {version} is affected by {match.advisory_id} ({match.severity}){fix}",
                    advisory=match.advisory_id,
                    summary=match.summary,
                    fixed=match.fixed,
                    advisory_severity=match.severity,
                )
            )
    return findings


def _spec_versions(ecosystem: str, spec: str) -> list[str]:
    """The versions a range names (`~4.17.0` → 4.17.0): candidates next to those the advisories name."""
    found = re.findall(r"\d+(?:\.\d+)*", spec)
    if ecosystem == "npm":
        found = [".".join((v.split(".") + ["0", "0"])[:3]) for v in found]
    return found


def _range_findings(dep: Dependency, advisories: list[Advisory]) -> list[Finding]:
    """A range judged over the package's known versions (those the advisories name): every admitted
    version affected → the advisory's severity; some → one low finding listing the advisories."""
    known = known_versions(dep.ecosystem, advisories, dep.name, extra=_spec_versions(dep.ecosystem, dep.spec))
    admitted = admitted_versions(dep.ecosystem, dep.spec, known)
    if not admitted:
        return []
    findings = []
    partly: list[str] = []
    for adv in advisories:
        matches = [m for m in (affected_by(adv, dep.ecosystem, dep.name, v) for v in admitted) if m]
        if not matches:
            continue
        if len(matches) < len(admitted):
            partly.append(adv.id)
            continue
        fixes = [v for v in known if not affected_by(adv, dep.ecosystem, dep.name, v)]
        first_fix = next((m.fixed for m in matches if m.fixed), None)
        fix = f"; fixed in {first_fix}" if first_fix else "; no fixed version" if not fixes else ""
        findings.append(
            _finding(
                "vulnerable-dependency",
                dep,
                matches[0].severity,
                f"{dep.name} {dep.spec}: every admitted version is affected by {adv.id} ({matches[0].severity}){fix}",
                advisory=adv.id,
                summary=adv.summary,
                fixed=first_fix,
                advisory_severity=matches[0].severity,
                range=dep.spec,
                admitted=admitted[:20],
            )
        )
    if partly:
        findings.append(
            _finding(
                "possibly-vulnerable-dependency",
                dep,
                Severity.low,
                f"{dep.name} {dep.spec} may resolve to an affected version ({', '.join(partly[:5])}"
                f"{', …' if len(partly) > 5 else ''}); pin or raise the lower bound",
                advisories=partly,
                range=dep.spec,
            )
        )
    return findings


def _advisory_set_findings(
    deps: list[Dependency], index: AdvisoryIndex, max_age_days: float, today: date
) -> list[Finding]:
    """Informational findings on the advisory sets themselves: missing for an ecosystem in use, or stale."""
    findings = []
    for ecosystem in [e for e in ECOSYSTEMS if any(d.ecosystem == e for d in deps)]:
        label = ECOSYSTEM_LABELS[ecosystem]
        sets = [s for s in index.sets if s.ecosystem == ecosystem and s.count]
        if not sets:
            findings.append(
                _set_finding(
                    "no-advisories",
                    ecosystem,
                    f"no advisories for {label}: its dependencies were not checked for known vulnerabilities "
                    "(`orchestrator advisories sync` fetches them)",
                )
            )
            continue
        newest = max((s.date for s in sets if s.date), default=None)
        age = (today - date.fromisoformat(newest)).days if newest else None
        if age is None or age > max_age_days:
            findings.append(
                _set_finding(
                    "advisories-stale",
                    ecosystem,
                    f"the {label} advisories are {age if age is not None else 'of unknown age,'} days old "
                    f"(as of {newest or 'unknown'}; policy allows {max_age_days:g}): newer vulnerabilities "
                    "are not known to this review (`orchestrator advisories sync` refreshes them)",
                    date=newest,
                    age_days=age,
                    sources=[s.source for s in sets],
                )
            )
    return findings


def _set_finding(rule: str, ecosystem: str, message: str, **extra: Any) -> Finding:
    return Finding(
        check=CHECK,
        rule=rule,
        file=None,
        line=None,
        severity=Severity.low,
        fingerprint=fingerprint(f"{rule}:{ecosystem}"),
        preview=f"{ECOSYSTEM_LABELS[ecosystem]} advisories",
        message=message,
        extra={"package": None, "ecosystem": ecosystem, "version": None, "informational": True, **extra},
    )


def check_dependencies(
    deps: list[Dependency],
    *,
    policy: Policy,
    data_class: str,
    advisories_dir: Path | None = None,
    index: AdvisoryIndex | None = None,
    today: date | None = None,
) -> list[Finding]:
    """Blocked, vulnerable (pins and ranges) and, for restricted/regulated apps, unpinned dependencies,
    plus a word on the advisory sets (missing or older than the policy's `advisories_max_age_days`).

    `index` defaults to the OSV files of `advisories_dir` alone (the engine passes the full index).
    `today` (for the sets' age) defaults to the UTC date: the checks may not import orchestrator.clock,
    which pulls in SQLAlchemy.
    """
    today = today or datetime.now(UTC).date()
    if index is None:
        index = build_index(advisories_dir=advisories_dir, data_dir=None, shipped=False)
    findings: list[Finding] = _advisory_set_findings(deps, index, policy.advisories_max_age_days, today)
    locked = {(d.ecosystem, d.name) for d in deps if d.locked}
    seen: set[tuple[str, str, str | None, str, str]] = set()
    for dep in deps:
        key = (dep.ecosystem, dep.name, dep.version, dep.spec, dep.file)
        if key in seen:
            continue
        seen.add(key)
        findings += _blocked_findings(dep, policy)
        advisories = index.by_package.get((dep.ecosystem, dep.name), [])
        if dep.version:
            findings += _pin_findings(dep, dep.version, advisories)
            continue
        is_locked = dep.locked or (dep.ecosystem, dep.name) in locked
        if dep.spec and advisories and not is_locked:
            findings += _range_findings(dep, advisories)
        if data_class in _STRICT_CLASSES and not is_locked:
            findings.append(
                _finding(
                    "unpinned-dependency",
                    dep,
                    Severity.medium,
                    f"{dep.name} is not pinned to one version ({dep.spec or 'any'}); {data_class} apps must pin",
                )
            )
    return findings


def collect_dependencies(files: dict[str, str]) -> list[Dependency]:
    """Parse every dependency manifest among `files` (relative path → text)."""
    deps: list[Dependency] = []
    for rel, text in sorted(files.items()):
        deps += parse_dependency_file(rel, text)
    return deps
