"""Dependency check: manifest parsers, OSV range evaluation, policy block list, unpinned dependencies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.advisories import affected_by, load_advisories, version_in_range
from orchestrator.reviews.checks.dependencies import (
    check_dependencies,
    parse_package_json,
    parse_package_lock,
    parse_pyproject,
    parse_requirements,
)


def write_osv(
    directory: Path, adv_id: str, ecosystem: str, name: str, ranges: list[dict[str, Any]], **extra: Any
) -> None:
    """Write one OSV advisory file into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    doc = {
        "id": adv_id,
        "summary": f"{name} is vulnerable",
        "affected": [
            {"package": {"ecosystem": ecosystem, "name": name}, "ranges": ranges, **extra.pop("affected_extra", {})}
        ],
        **extra,
    }
    (directory / f"{adv_id}.json").write_text(json.dumps(doc), encoding="utf-8")


def test_requirements_parsing_pins_and_ranges() -> None:
    """Exact pins carry a version; ranges, options and URLs do not produce pins."""
    deps = parse_requirements("Requests==2.19.0  # pinned\nflask>=2\n-r other.txt\ngit+https://x/y.git\n", "req.txt")
    assert [(d.name, d.version) for d in deps] == [("requests", "2.19.0"), ("flask", None)]


def test_pyproject_pep621_and_poetry() -> None:
    """PEP 621 dependencies and optional groups, and Poetry tables (bare versions are exact pins)."""
    text = """
[project]
dependencies = ["httpx==0.27.0", "rich>=13"]
[project.optional-dependencies]
dev = ["pytest==8.2.0"]
[tool.poetry.dependencies]
python = "^3.11"
Django = "4.2.1"
celery = {version = "^5.3"}
[tool.poetry.group.test.dependencies]
coverage = "==7.5.0"
"""
    deps = {(d.name, d.version) for d in parse_pyproject(text, "pyproject.toml")}
    assert deps == {
        ("httpx", "0.27.0"),
        ("rich", None),
        ("pytest", "8.2.0"),
        ("django", "4.2.1"),
        ("celery", None),
        ("coverage", "7.5.0"),
    }


def test_package_json_and_lockfiles_v1_v2_v3() -> None:
    """package.json exact versions pin; lockfiles v1 (nested) and v2/v3 (packages) give locked versions."""
    pj = parse_package_json('{"dependencies": {"a": "1.2.3", "b": "^2.0.0"}, "devDependencies": {"c": "=3.0.0"}}', "p")
    assert {(d.name, d.version) for d in pj} == {("a", "1.2.3"), ("b", None), ("c", "3.0.0")}
    v1 = {
        "lockfileVersion": 1,
        "dependencies": {"x": {"version": "1.0.0", "dependencies": {"y": {"version": "2.0.0"}}}},
    }
    v3 = {
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "app"},
            "node_modules/x": {"version": "1.0.1"},
            "node_modules/@s/z": {"version": "0.1.0"},
            "node_modules/x/node_modules/y": {"version": "2.0.1"},
        },
    }
    assert {(d.name, d.version) for d in parse_package_lock(json.dumps(v1), "l")} == {("x", "1.0.0"), ("y", "2.0.0")}
    locked = parse_package_lock(json.dumps(v3), "l")
    assert {(d.name, d.version) for d in locked} == {("x", "1.0.1"), ("@s/z", "0.1.0"), ("y", "2.0.1")}
    assert all(d.locked for d in locked)


def test_pep440_ranges_compare_versions_not_strings(tmp_path: Path) -> None:
    """10.0 is newer than 9.9: a string compare would get this wrong."""
    write_osv(
        tmp_path,
        "PYSEC-1",
        "PyPI",
        "pkg",
        [{"type": "ECOSYSTEM", "events": [{"introduced": "9.0"}, {"fixed": "10.0"}]}],
    )
    (adv,) = load_advisories(tmp_path)[("pypi", "pkg")]
    assert affected_by(adv, "pypi", "pkg", "9.9") is not None
    assert affected_by(adv, "pypi", "pkg", "10.0") is None
    assert affected_by(adv, "pypi", "pkg", "10.0rc1") is not None  # pre-release of the fix is still affected
    assert affected_by(adv, "pypi", "pkg", "9.10").fixed == "10.0"  # type: ignore[union-attr]


def test_semver_ranges_last_affected_and_explicit_versions(tmp_path: Path) -> None:
    """SEMVER ranges with last_affected, and explicit `versions` lists, match exactly."""
    write_osv(
        tmp_path,
        "GHSA-1",
        "npm",
        "lib",
        [{"type": "SEMVER", "events": [{"introduced": "0"}, {"last_affected": "1.10.2"}]}],
        affected_extra={"versions": ["2.0.0-beta.1"]},
    )
    (adv,) = load_advisories(tmp_path)[("npm", "lib")]
    assert affected_by(adv, "npm", "lib", "1.9.9") and affected_by(adv, "npm", "lib", "1.10.2")
    assert affected_by(adv, "npm", "lib", "1.10.3") is None
    assert affected_by(adv, "npm", "lib", "2.0.0-beta.1") is not None


@pytest.mark.parametrize(
    ("version", "spec", "expected"),
    [
        ("3.3.6", "3.3.6", True),
        ("0.7.29", ">=0.7.29 <0.7.30", True),
        ("0.7.30", ">=0.7.29 <0.7.30", False),
        ("1.9.0", "^1.2.3", True),
        ("2.0.0", "^1.2.3", False),
        ("1.2.9", "~1.2.0", True),
        ("1.4.0", "1.2.x || 1.4.x", True),
    ],
)
def test_npm_policy_ranges(version: str, spec: str, expected: bool) -> None:
    """Policy ranges for npm use semver semantics, including ^, ~, x-ranges and ||."""
    assert version_in_range("npm", version, spec) is expected


def test_check_reports_blocked_vulnerable_and_unpinned(tmp_path: Path) -> None:
    """A finding names package, version, advisory id, severity and first fixed version."""
    write_osv(
        tmp_path,
        "GHSA-req",
        "PyPI",
        "requests",
        [
            {
                "type": "ECOSYSTEM",
                "events": [{"introduced": "0"}, {"fixed": "2.20.0"}, {"introduced": "2.25.0"}, {"fixed": "2.31.0"}],
            }
        ],
        database_specific={"severity": "HIGH"},
    )
    deps = parse_requirements("requests==2.19.1\npycrypto==2.6.1\nflask>=2\n", "requirements.txt")
    deps += parse_package_json('{"dependencies": {"event-stream": "3.3.6", "ua-parser-js": "0.7.31"}}', "package.json")
    policy = load_policy()
    findings = check_dependencies(deps, policy=policy, data_class="restricted", advisories_dir=tmp_path)
    by_rule = {(f.rule, f.extra["package"]) for f in findings}
    assert ("vulnerable-dependency", "requests") in by_rule
    assert ("blocked-dependency", "pycrypto") in by_rule and ("blocked-dependency", "event-stream") in by_rule
    assert ("blocked-dependency", "ua-parser-js") not in by_rule  # 0.7.31 is outside the blocked range
    assert ("unpinned-dependency", "flask") in by_rule
    vuln = next(f for f in findings if f.rule == "vulnerable-dependency")
    assert (vuln.extra["version"], vuln.extra["advisory"], vuln.severity, vuln.extra["fixed"]) == (
        "2.19.1",
        "GHSA-req",
        "high",
        "2.20.0",
    )
    internal = check_dependencies(deps, policy=policy, data_class="internal", advisories_dir=tmp_path)
    assert not any(f.rule == "unpinned-dependency" for f in internal)
