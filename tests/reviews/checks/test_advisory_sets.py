"""Advisories by default: the shipped PyPA snapshot, its cached index, the sets a review names, and ranges."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks import advisory_sets
from orchestrator.reviews.checks.advisory_sets import AdvisoryIndex, build_index, read_set
from orchestrator.reviews.checks.dependencies import check_dependencies, parse_package_json, parse_requirements
from orchestrator.reviews.checks.engine import review_directory
from orchestrator.reviews.checks.findings import Finding
from tests.reviews.checks.test_dependencies import write_osv

MANIFEST = (
    "name: Probe\nowner: maker@example.com\ndata_class: internal\ndescription: probe\nconnectors: []\nscopes: []\n"
)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> AdvisoryIndex:
    """The default index (shipped PyPI snapshot) with a data directory to cache it in."""
    return build_index(advisories_dir=None, data_dir=tmp_path_factory.mktemp("data"))


def _vulns(findings: list[Finding], package: str) -> dict[str, Finding]:
    hits = [f for f in findings if f.rule == "vulnerable-dependency" and f.extra["package"] == package]
    return {f.extra["advisory"]: f for f in hits}


def test_fresh_review_flags_old_requests_and_jinja2_and_names_the_sets(tmp_path: Path) -> None:
    """With no ADVISORIES_DIR, a review uses the shipped snapshot and says so (and that npm has none)."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "microapp.yaml").write_text(MANIFEST)
    (app / "requirements.txt").write_text("requests==2.19.1\njinja2==2.10\n")
    (app / "package.json").write_text('{"dependencies": {"left-pad": "1.3.0"}}')
    data = tmp_path / "data"
    data.mkdir()
    index = build_index(advisories_dir=None, data_dir=data)
    result = review_directory(app, policy=load_policy(), advisory_index=index)
    assert "PYSEC-2018-28" in _vulns(result.findings, "requests")  # CVE-2018-18074, fixed in 2.20.0
    assert _vulns(result.findings, "requests")["PYSEC-2018-28"].extra["fixed"] == "2.20.0"
    assert "PYSEC-2019-217" in _vulns(result.findings, "jinja2")  # CVE-2019-10906, fixed in 2.10.1
    block = result.stats["advisories"]
    (pypi,) = block["sets"]
    assert (pypi["ecosystem"], pypi["date"]) == ("pypi", "2024-10-10")
    assert pypi["advisories"] > 2000 and "pypa-advisory-db" in pypi["source"]
    assert block["missing"] == ["npm"] and block["notes"] == ["no advisories for npm"]
    rules = {f.rule: f for f in result.findings}
    assert "npm" in rules["no-advisories"].message
    assert rules["advisories-stale"].extra["date"] == "2024-10-10"
    # Informational: an app with only these two findings would not be held back by them.
    assert rules["advisories-stale"].extra["informational"] and rules["advisories-stale"].severity == "low"


def test_shipped_index_is_cached_under_the_data_directory(tmp_path: Path) -> None:
    """The parsed snapshot is written once as a set file; a later build reads it instead of the archive."""
    advisory_sets._memo.clear()
    build_index(advisories_dir=None, data_dir=tmp_path)
    (cached,) = (tmp_path / "advisories" / "cache").glob("*.json")
    loaded = read_set(cached)
    assert loaded is not None and loaded[0].date == "2024-10-10" and loaded[0].ecosystem == "pypi"
    # Tamper with the cache: the next build (fresh process memory) must come from it, not the archive.
    doc = json.loads(cached.read_text())
    doc["advisories"] = [a for a in doc["advisories"] if a["id"] == "PYSEC-2018-28"]
    doc["count"] = 1
    cached.write_text(json.dumps(doc))
    advisory_sets._memo.clear()
    index = build_index(advisories_dir=None, data_dir=tmp_path)
    assert index.sets[0].count == 1 and list(index.by_package) == [("pypi", "requests")]
    advisory_sets._memo.clear()


def test_stale_finding_follows_the_policy_age(shipped: AdvisoryIndex) -> None:
    """Older than `advisories_max_age_days` → a finding of its own; within it → none."""
    deps = parse_requirements("requests==2.32.3\n", "requirements.txt")
    policy = load_policy()
    old = check_dependencies(deps, policy=policy, data_class="internal", index=shipped, today=date(2025, 1, 1))
    (stale,) = [f for f in old if f.rule == "advisories-stale"]
    assert stale.extra["age_days"] == 83
    lenient = policy.model_copy(update={"advisories_max_age_days": 100})
    fresh = check_dependencies(deps, policy=lenient, data_class="internal", index=shipped, today=date(2025, 1, 1))
    assert not [f for f in fresh if f.rule == "advisories-stale"]


@pytest.mark.parametrize(
    ("line", "advisory"),
    [
        ("requests>=2.30,<2.31", "PYSEC-2023-74"),
        ("requests==2.30.*", "PYSEC-2023-74"),
        ("PyYAML~=5.3.0", "PYSEC-2021-142"),
        ("jinja2>=2.10,<2.10.1", "PYSEC-2019-217"),
        ("requests===2.19.1", "PYSEC-2018-28"),
    ],
)
def test_a_range_whose_every_version_is_affected_is_flagged(shipped: AdvisoryIndex, line: str, advisory: str) -> None:
    """Every admitted version affected → the advisory's own finding (as for a pin), naming the range."""
    deps = parse_requirements(line + "\n", "requirements.txt")
    findings = check_dependencies(deps, policy=load_policy(), data_class="internal", index=shipped)
    name = deps[0].name
    hit = _vulns(findings, name)[advisory]
    assert "every admitted version is affected" in hit.message or hit.extra["version"]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("requests>=2.31", set()),  # past every fix in the snapshot
        ("requests>=2.19,<2.32", {"possibly-vulnerable-dependency"}),  # 2.31.0 is fixed, 2.19.1 is not
    ],
)
def test_ranges_partly_or_not_affected(shipped: AdvisoryIndex, line: str, expected: set[str]) -> None:
    """Some admitted versions fixed → one low 'may resolve' finding; none affected → nothing."""
    deps = parse_requirements(line + "\n", "requirements.txt")
    findings = check_dependencies(deps, policy=load_policy(), data_class="internal", index=shipped)
    rules = {f.rule for f in findings if f.extra.get("package") == "requests"}
    assert rules == expected
    for f in findings:
        if f.rule == "possibly-vulnerable-dependency":
            assert f.severity == "low" and "PYSEC-2023-74" in f.extra["advisories"]


def _lodash(tmp_path: Path, fixed: str) -> AdvisoryIndex:
    write_osv(
        tmp_path,
        "GHSA-lodash",
        "npm",
        "lodash",
        [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
        database_specific={"severity": "HIGH"},
    )
    return build_index(advisories_dir=tmp_path, data_dir=None, shipped=False)


@pytest.mark.parametrize(
    ("spec", "fixed", "rule"),
    [
        ("~4.17.0", "4.18.0", "vulnerable-dependency"),  # every 4.17.x is below the fix
        ("~4.17.0", "4.17.21", "possibly-vulnerable-dependency"),  # 4.17.21 is admitted and fixed
        ("4.17.0 - 4.17.20", "4.17.21", "vulnerable-dependency"),
        (">=4.17.0 <4.17.21 || 3.x", "4.17.21", "vulnerable-dependency"),
        ("^4.17.21", "4.17.21", None),
        ("^0.x", "4.17.21", "vulnerable-dependency"),
    ],
)
def test_npm_ranges_against_advisories(tmp_path: Path, spec: str, fixed: str, rule: str | None) -> None:
    """npm ranges use npm's semantics; a high advisory over every admitted version is high."""
    deps = parse_package_json(json.dumps({"dependencies": {"lodash": spec}}), "package.json")
    findings = check_dependencies(deps, policy=load_policy(), data_class="internal", index=_lodash(tmp_path, fixed))
    rules = {f.rule for f in findings if f.extra.get("package") == "lodash"}
    assert rules == ({rule} if rule else set())
    if rule == "vulnerable-dependency":
        assert next(f for f in findings if f.rule == rule).severity == "high"


def test_lockfile_version_wins_over_the_manifest_range(tmp_path: Path) -> None:
    """A range in package.json is not judged when a lockfile pins the package: the locked version is."""
    index = _lodash(tmp_path, "4.17.21")
    deps = parse_package_json('{"dependencies": {"lodash": "~4.17.0"}}', "package.json")
    from orchestrator.reviews.checks.dependencies import parse_package_lock

    lock = {"lockfileVersion": 3, "packages": {"": {}, "node_modules/lodash": {"version": "4.17.21"}}}
    deps += parse_package_lock(json.dumps(lock), "package-lock.json")
    findings = check_dependencies(deps, policy=load_policy(), data_class="internal", index=index)
    assert not [f for f in findings if f.extra.get("package") == "lodash"]


def test_poetry_caret_and_tilde_ranges_are_judged(shipped: AdvisoryIndex) -> None:
    """Poetry's `~5.3` and `^2.30` read as PEP 440 ranges, so they are judged like any other range."""
    from orchestrator.reviews.checks.dependencies import parse_pyproject

    text = '[tool.poetry.dependencies]\npython = "^3.11"\npyyaml = "~5.3"\nrequests = "~2.30"\n'
    deps = parse_pyproject(text, "pyproject.toml")
    assert {(d.name, d.spec) for d in deps} == {("pyyaml", ">=5.3,<5.4"), ("requests", ">=2.30,<2.31")}
    findings = check_dependencies(deps, policy=load_policy(), data_class="internal", index=shipped)
    assert "PYSEC-2021-142" in _vulns(findings, "pyyaml") and "PYSEC-2023-74" in _vulns(findings, "requests")
