"""Lockfiles and SBOMs: resolved versions from real fixtures (tests/data/lockfiles, see SOURCES.md), and a
lockfile's version winning over the manifest's range in a whole review."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.advisory_sets import build_index
from orchestrator.reviews.checks.dependencies import (
    collect_dependencies,
    is_dependency_file,
    parse_dependency_file,
    parse_requirements,
)
from orchestrator.reviews.checks.engine import review_directory
from tests.reviews.checks.test_dependencies import write_osv

DATA = Path(__file__).resolve().parents[2] / "data" / "lockfiles"


@pytest.mark.parametrize(
    ("fixture", "as_name", "expected"),
    [
        ("yarn-with-dependencies-v1.lock", "yarn.lock", {("domino", "2.1.6+git"), ("tslib", "2.6.2")}),
        ("yarn-with-dependencies-v2.lock", "yarn.lock", {("domino", "2.1.6+git"), ("tslib", "2.6.2")}),
        ("pnpm-scoped-packages-v6.yaml", "pnpm-lock.yaml", {("@typescript-eslint/types", "5.57.1")}),
        (
            "pnpm-multiple-versions-v9.yaml",
            "pnpm-lock.yaml",
            {("aws-sdk", "2.1692.0"), ("uuid", "8.0.0"), ("uuid", "8.3.2")},
        ),
        ("Pipfile-minified.lock.json", "Pipfile.lock", {("markupsafe", "2.1.1")}),
        ("sbom-with-nested-comps.cdx.json", "bom.json", set()),  # generic and cargo purls: not ours
    ],
)
def test_real_lockfiles_give_resolved_versions(fixture: str, as_name: str, expected: set[tuple[str, str]]) -> None:
    """Every resolved package, locked, with workspace and link entries left out."""
    assert is_dependency_file(f"app/{as_name}")
    deps = parse_dependency_file(as_name, (DATA / fixture).read_text(encoding="utf-8"))
    assert {(d.name, d.version) for d in deps} == expected
    assert all(d.locked for d in deps)


def test_poetry_lock_v2() -> None:
    """poetry.lock: every `[[package]]`, names normalised."""
    deps = parse_dependency_file("poetry.lock", (DATA / "poetry-multiple-packages-v2.lock").read_text())
    found = {(d.name, d.version) for d in deps}
    assert len(found) == 10 and ("python-dateutil", "2.9.0.post0") in found and ("redis", "5.2.1") in found


def test_uv_lock_skips_the_project_itself() -> None:
    """uv.lock: registry packages, not the virtual/editable project."""
    text = (
        'version = 1\nrequires-python = ">=3.11"\n\n[[package]]\nname = "my-app"\nversion = "0.1.0"\n'
        'source = { virtual = "." }\n\n[[package]]\nname = "Jinja2"\nversion = "2.10"\n'
        'source = { registry = "https://pypi.org/simple" }\n'
    )
    assert [(d.name, d.version, d.locked) for d in parse_dependency_file("uv.lock", text)] == [("jinja2", "2.10", True)]


def test_spdx_and_cyclonedx_purls() -> None:
    """PyPI and npm package URLs (scoped, percent-encoded) from SPDX external refs and CycloneDX components."""
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "packages": [
            {
                "name": "requests",
                "externalRefs": [{"referenceType": "purl", "referenceLocator": "pkg:pypi/requests@2.19.1"}],
            },
            {
                "name": "x",
                "externalRefs": [{"referenceType": "purl", "referenceLocator": "pkg:npm/%40babel/core@7.0.0"}],
            },
        ],
    }
    cdx = {"bomFormat": "CycloneDX", "components": [{"name": "lodash", "purl": "pkg:npm/lodash@4.17.20"}]}
    assert {(d.ecosystem, d.name, d.version) for d in parse_dependency_file("app.spdx.json", json.dumps(spdx))} == {
        ("pypi", "requests", "2.19.1"),
        ("npm", "@babel/core", "7.0.0"),
    }
    assert [(d.name, d.version) for d in parse_dependency_file("bom.json", json.dumps(cdx))] == [("lodash", "4.17.20")]


def test_requirements_with_hashes_includes_markers_and_extras() -> None:
    """Hash continuations, extras and markers parse; `-c` constraints pin (locked) what a range leaves open."""
    req = (
        "-r base.txt\n-c constraints.txt\n"
        "requests[socks]==2.19.1 \\\n    --hash=sha256:" + "ab" * 32 + " \\\n    --hash=sha256:" + "cd" * 32 + "\n"
        'pywin32==306 ; sys_platform == "win32"\n'
        "jinja2>=2.10\n"
    )
    files = {"requirements.txt": req, "constraints.txt": "jinja2==2.10\n"}
    deps = collect_dependencies(files)
    got = {(d.name, d.version, d.locked, d.file) for d in deps}
    assert ("requests", "2.19.1", False, "requirements.txt") in got
    assert ("pywin32", "306", False, "requirements.txt") in got
    assert ("jinja2", "2.10", True, "constraints.txt") in got
    assert [(d.name, d.spec) for d in parse_requirements(req, "r.txt") if d.version is None] == [("jinja2", ">=2.10")]


def test_review_judges_the_locked_version_not_the_range(tmp_path: Path) -> None:
    """package.json says `^4.17.0` (some affected), the yarn.lock resolves 4.17.21 (fixed): no finding;
    a lock resolving 4.17.20 gives the advisory on the locked version."""
    advisories = tmp_path / "osv"
    write_osv(
        advisories,
        "GHSA-l",
        "npm",
        "lodash",
        [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "4.17.21"}]}],
    )
    index = build_index(advisories_dir=advisories, data_dir=None, shipped=False)
    for locked, flagged in (("4.17.21", False), ("4.17.20", True)):
        app = tmp_path / f"app-{locked}"
        app.mkdir()
        (app / "package.json").write_text('{"dependencies": {"lodash": "^4.17.0"}}')
        (app / "yarn.lock").write_text(
            f'lodash@^4.17.0:\n  version "{locked}"\n  resolved "https://registry.yarnpkg.com/lodash/-/lodash-{locked}.tgz"\n'
        )
        result = review_directory(app, policy=load_policy(), advisory_index=index)
        hits = [f for f in result.findings if f.extra.get("package") == "lodash"]
        assert [(f.rule, f.file, f.extra["version"]) for f in hits] == (
            [("vulnerable-dependency", "yarn.lock", locked)] if flagged else []
        )
