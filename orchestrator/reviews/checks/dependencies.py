"""Dependency check: what the app depends on, against the policy's block list and OSV advisories.

Parses requirements*.txt / *.in and constraints files (hashes, `-r`/`-c` includes, extras, markers),
pyproject.toml (PEP 621 and Poetry), package.json, the lockfiles package-lock.json (v1-v3),
npm-shrinkwrap.json, yarn.lock (classic and Berry), pnpm-lock.yaml (v5-v9), poetry.lock, uv.lock and
Pipfile.lock, and CycloneDX / SPDX JSON SBOMs. A lockfile's resolved version wins over a manifest's range.
A finding names the package, the pinned version, the advisory, its
severity and the first fixed version. Unpinned dependencies are a finding for restricted and regulated
apps, whose reviews must be reproducible.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import yaml
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

# The file names live in a module of their own so that the engine can tell a dependency file without
# loading this one (packaging, the advisory index): see engine.py.
from orchestrator.reviews.checks.dependency_files import _SBOM_NAMES, _SBOM_SUFFIXES, LOCKFILE_NAMES, is_dependency_file
from orchestrator.reviews.checks.findings import Finding, Severity, fingerprint

__all__ = ["LOCKFILE_NAMES", "Dependency", "check_dependencies", "collect_dependencies", "is_dependency_file"]

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


def _logical_lines(text: str) -> list[str]:
    """Requirement lines with `\\` continuations joined and comments dropped."""
    out, pending = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending.strip():
        out.append(pending.strip())
    return out


_INCLUDE_RE = re.compile(r"^(-r|--requirement|-c|--constraint)(?:\s+|=)(\S+)")
_OPTION_RE = re.compile(r"\s--?[a-z][\w-]*(?:[ =]\S+)?")


def requirement_includes(text: str) -> list[tuple[str, str]]:
    """The `-r`/`-c` includes of a requirements file: (kind "r" or "c", path as written)."""
    found = []
    for line in _logical_lines(text):
        m = _INCLUDE_RE.match(line)
        if m:
            found.append(("c" if m.group(1) in ("-c", "--constraint") else "r", m.group(2)))
    return found


def parse_requirements(text: str, file: str, *, constraints: bool = False) -> list[Dependency]:
    """Dependencies from a pip requirements file: pins (with `--hash` options), ranges, extras and markers.

    Options, URLs and local paths are not dependencies; `-r`/`-c` includes are followed by
    `collect_dependencies`. Pins of a constraints file count as locked versions.
    """
    deps = []
    for line in _logical_lines(text):
        if not line or line.startswith(("-", "git+", "http:", "https:", "file:", ".", "/")):
            continue
        line = _OPTION_RE.sub("", " " + line).strip()  # `--hash=sha256:…` and other per-line options
        dep = _pep508(line, file)
        if dep:
            deps.append(Dependency(dep.ecosystem, dep.name, dep.version, dep.spec, file, locked=constraints))
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
    return Dependency("pypi", normalize_name("pypi", name), version, poetry_to_pep440(constraint), file)


_POETRY_OP_RE = re.compile(r"^([\^~])\s*(\d+(?:\.\d+){0,2})$")


def poetry_to_pep440(constraint: str) -> str:
    """Poetry's caret and tilde constraints as PEP 440 (`^1.2.3` → `>=1.2.3,<2.0.0`, `~1.2` → `>=1.2,<1.3`);
    anything else (already PEP 440, `*`, or a comma list of those) is returned as written."""
    parts = []
    for piece in constraint.split(","):
        piece = piece.strip()
        m = _POETRY_OP_RE.match(piece)
        if not m:
            parts.append(f"=={piece}" if piece[:1].isdigit() else piece)
            continue
        op, text = m.groups()
        nums = [int(n) for n in text.split(".")]
        if op == "^":
            cut = next((i for i, n in enumerate(nums) if n != 0), len(nums) - 1)
        else:
            cut = 0 if len(nums) == 1 else 1
        upper = nums[: cut + 1]
        upper[-1] += 1
        parts.append(f">={text},<{'.'.join(str(n) for n in upper)}")
    return ",".join(p for p in parts if p and p != "*")


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


def _locked(ecosystem: str, name: str, version: Any, file: str) -> Dependency | None:
    if not name or not isinstance(version, str) or not version.strip():
        return None
    return Dependency(ecosystem, normalize_name(ecosystem, name), version.strip().lstrip("="), "", file, locked=True)


def _yarn_name(spec: str) -> str:
    spec = spec.strip().strip('"').strip()
    at = spec.find("@", 1)  # a scope's own `@` is the first character
    return spec[:at] if at > 0 else spec


_YARN_VERSION_RE = re.compile(r'^\s+version:?\s+"?([^"\s]+)"?\s*$')


def parse_yarn_lock(text: str, file: str) -> list[Dependency]:
    """Resolved versions of yarn.lock, classic (v1) or Berry (v2+); workspace entries are left out."""
    deps: list[Dependency] = []
    header: str | None = None
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#") and line.rstrip().endswith(":"):
            header = line.rstrip()[:-1]
            continue
        m = _YARN_VERSION_RE.match(line)
        if m and header and header != "__metadata":
            first = header.split(",")[0]
            version = m.group(1)
            if "@workspace:" in header or "@link:" in header or version.startswith("0.0.0-use.local"):
                continue
            dep = _locked("npm", _yarn_name(first), version, file)
            if dep:
                deps.append(dep)
            header = None
    return deps


_PNPM_KEY_RE = re.compile(r"^/?((?:@[^@/]+/)?[^@/]+)[@/](\d[^_(/]*)")


def parse_pnpm_lock(text: str, file: str) -> list[Dependency]:
    """Resolved versions of pnpm-lock.yaml (lockfile v5 `/name/1.0.0`, v6 `/name@1.0.0`, v9 `name@1.0.0`)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    deps = []
    for key in (data or {}).get("packages") or {}:
        m = _PNPM_KEY_RE.match(str(key))
        if m:
            dep = _locked("npm", m.group(1), m.group(2), file)
            if dep:
                deps.append(dep)
    return deps


def parse_toml_lock(text: str, file: str) -> list[Dependency]:
    """Resolved versions of poetry.lock and uv.lock (`[[package]]` name and version; the project itself,
    a virtual or editable source in uv.lock, is left out)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []
    deps = []
    for package in data.get("package") or []:
        source = package.get("source") or {}
        if isinstance(source, dict) and ({"virtual", "editable"} & source.keys()):
            continue
        dep = _locked("pypi", str(package.get("name", "")), package.get("version"), file)
        if dep:
            deps.append(dep)
    return deps


def parse_pipfile_lock(text: str, file: str) -> list[Dependency]:
    """Resolved versions of Pipfile.lock (`default` and `develop`, `"version": "==1.2.3"`)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    deps = []
    for section in ("default", "develop"):
        for name, info in (data.get(section) or {}).items():
            if isinstance(info, dict):
                dep = _locked("pypi", name, info.get("version"), file)
                if dep:
                    deps.append(dep)
    return deps


def _purl(purl: str, file: str) -> Dependency | None:
    """A dependency from a package URL (`pkg:pypi/requests@2.19.1`, `pkg:npm/%40scope/name@1.0.0`)."""
    m = re.match(r"^pkg:(pypi|npm)/([^@?#]+)@([^?#]+)", purl.strip())
    if not m:
        return None
    return _locked(m.group(1), unquote(m.group(2)), unquote(m.group(3)), file)


def parse_sbom(text: str, file: str) -> list[Dependency]:
    """PyPI and npm components of a CycloneDX JSON SBOM (nested components included) or an SPDX JSON
    document (packages' purl external references)."""
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    purls: list[str] = []
    todo = list(data.get("components") or [])
    while todo:
        component = todo.pop()
        if isinstance(component, dict):
            purls.append(str(component.get("purl") or ""))
            todo += component.get("components") or []
    for package in data.get("packages") or []:
        for ref in (package or {}).get("externalRefs") or []:
            if str(ref.get("referenceType", "")).lower() == "purl":
                purls.append(str(ref.get("referenceLocator") or ""))
    return [d for d in (_purl(p, file) for p in purls) if d]


def parse_dependency_file(rel: str, text: str) -> list[Dependency]:
    """Dispatch on the file name."""
    name = PurePosixPath(rel).name
    parsers = {
        "pyproject.toml": parse_pyproject,
        "package.json": parse_package_json,
        "package-lock.json": parse_package_lock,
        "npm-shrinkwrap.json": parse_package_lock,
        "yarn.lock": parse_yarn_lock,
        "pnpm-lock.yaml": parse_pnpm_lock,
        "poetry.lock": parse_toml_lock,
        "uv.lock": parse_toml_lock,
        "Pipfile.lock": parse_pipfile_lock,
    }
    if name in parsers:
        return parsers[name](text, rel)
    if name in _SBOM_NAMES or name.endswith(_SBOM_SUFFIXES):
        return parse_sbom(text, rel)
    return parse_requirements(text, rel, constraints=name.startswith("constraints"))


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


@dataclass
class Includes:
    """What following the `-r`/`-c` includes of the requirements files found.

    `texts`: the included files that were not among the dependency files (any name), read through
    the caller's `read`; `constraint_files`: files named by a `-c`; `problems`: findings for includes
    refused (a path leaving the repository, a cycle) or not found.
    """

    texts: dict[str, str] = field(default_factory=dict)
    constraint_files: set[str] = field(default_factory=set)
    problems: list[Finding] = field(default_factory=list)


def _is_requirements(rel: str) -> bool:
    name = PurePosixPath(rel).name
    return name.endswith((".txt", ".in")) and name not in (*LOCKFILE_NAMES, *_SBOM_NAMES)


def _include_finding(rule: str, file: str, target: str, severity: Severity, message: str) -> Finding:
    return Finding(
        check=CHECK,
        rule=rule,
        file=file,
        line=None,
        severity=severity,
        fingerprint=fingerprint(f"{rule}:{file}:{target}"),
        preview=target[:120],
        message=message,
        extra={"package": None, "ecosystem": "pypi", "version": None, "include": target},
    )


def follow_includes(files: dict[str, str], read: Callable[[str], str | None] | None = None) -> Includes:
    """Follow the `-r`/`-c` includes of every requirements file among `files`, whatever the included
    file is named, relative to the including file and within the repository only.

    `read(rel)` returns the text of a repository file that is not among `files` (None when absent);
    without it only `files` are known. A path leaving the repository root (absolute or through `..`)
    is never read, and an include that leads back to a file on its own chain is not followed again;
    both are reported, as is an included file that does not exist. URLs are not fetched.
    """
    out = Includes()
    reported: set[tuple[str, str, str]] = set()

    def report(rule: str, file: str, target: str, severity: Severity, message: str) -> None:
        if (rule, file, target) not in reported:
            reported.add((rule, file, target))
            out.problems.append(_include_finding(rule, file, target, severity, message))

    def text_of(rel: str) -> str | None:
        if rel in files:
            return files[rel]
        if rel not in out.texts and read is not None:
            found = read(rel)
            if found is not None:
                out.texts[rel] = found
        return out.texts.get(rel)

    done: set[str] = set()

    def visit(rel: str, chain: tuple[str, ...]) -> None:
        text = text_of(rel)
        if text is None or rel in done:
            return
        for kind, target in requirement_includes(text):
            if "://" in target:
                continue  # pip may fetch a URL; a review does not
            path = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if target.startswith("/") or path == ".." or path.startswith("../"):
                report("requirements-include-outside-repository", rel, target, Severity.medium,
                       f"`-{kind} {target}` points outside the repository; not followed")  # fmt: skip
                continue
            if kind == "c":
                out.constraint_files.add(path)
            if path in chain or path == rel:
                loop = " → ".join([*chain[chain.index(path) :], rel, path]) if path in chain else f"{rel} → {path}"
                why = f"`-{kind} {target}` includes a file already on its own chain ({loop}); not followed again"
                report("requirements-include-cycle", rel, target, Severity.low, why)
                continue
            if text_of(path) is None:
                report("requirements-include-missing", rel, target, Severity.low,
                       f"`-{kind} {target}` names {path}, which is not in the repository")  # fmt: skip
                continue
            visit(path, (*chain, rel))
        done.add(rel)

    for rel in sorted(files):
        if _is_requirements(rel):
            visit(rel, ())
    return out


def collect_dependencies(
    files: dict[str, str], *, includes: Includes | None = None, read: Callable[[str], str | None] | None = None
) -> list[Dependency]:
    """Parse every dependency file among `files` (relative path → text) and every file their `-r`
    includes and `-c` constraints name, whatever its name (`follow_includes`, with `read` for the files
    not among `files`); the pins of a constraints file count as locked."""
    includes = includes if includes is not None else follow_includes(files, read)
    deps: list[Dependency] = []
    for rel, text in sorted({**includes.texts, **files}.items()):
        if rel in includes.constraint_files:
            deps += parse_requirements(text, rel, constraints=True)
        elif rel in includes.texts:
            deps += parse_requirements(text, rel)
        else:
            deps += parse_dependency_file(rel, text)
    return deps
