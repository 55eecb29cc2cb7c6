"""`-r`/`-c` includes of requirements files are followed whatever the included file is named, relative to
the including file and inside the repository only: a path leaving it and a cycle are refused and reported."""

from __future__ import annotations

from pathlib import Path

from orchestrator.catalog.policy import load_policy
from orchestrator.reviews.checks.advisory_sets import AdvisoryIndex, build_index
from orchestrator.reviews.checks.dependencies import collect_dependencies, follow_includes
from orchestrator.reviews.checks.engine import review_directory
from orchestrator.reviews.checks.findings import Finding
from tests.reviews.checks.test_dependencies import write_osv


def _index(tmp_path: Path) -> AdvisoryIndex:
    """Advisories for requests < 2.20 and jinja2 < 2.11 (both PyPI)."""
    osv = tmp_path / "osv"
    for adv, name, fixed in (("PYSEC-r", "requests", "2.20.0"), ("PYSEC-j", "jinja2", "2.11.0")):
        write_osv(osv, adv, "PyPI", name, [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}])
    return build_index(advisories_dir=osv, data_dir=None, shipped=False)


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _dependency_findings(root: Path, index: AdvisoryIndex) -> list[Finding]:
    result = review_directory(root, policy=load_policy(), advisory_index=index, data_class="internal")
    return [f for f in result.findings if f.check == "dependencies" and not f.extra.get("informational")]


def test_includes_with_any_name_are_followed_in_a_review(tmp_path: Path) -> None:
    """`-r base.txt` and `-c constraints/prod.txt`: neither is named like a dependency file, both are read;
    the vulnerable pin of base.txt is flagged, and the constraint's pin (locked) is judged, not the range."""
    app = _write(
        tmp_path / "app",
        {
            "requirements.txt": "-r base.txt\n-c constraints/prod.txt\njinja2>=2.10\n",
            "base.txt": "requests==2.19.1\n",
            "constraints/prod.txt": "jinja2==2.10\n",
        },
    )
    findings = _dependency_findings(app, _index(tmp_path))
    found = {(f.rule, f.file, f.extra["package"], f.extra["version"]) for f in findings}
    assert found == {
        ("vulnerable-dependency", "base.txt", "requests", "2.19.1"),
        ("vulnerable-dependency", "constraints/prod.txt", "jinja2", "2.10"),
    }


def test_nested_includes_resolve_relative_to_the_including_file() -> None:
    """deps/dev.txt says `-r ../common/base.txt`: the path is taken from deps/, not from the root."""
    files = {"requirements.txt": "-r deps/dev.txt\n"}
    others = {"deps/dev.txt": "-r ../common/base.txt\npytest==8.0.0\n", "common/base.txt": "flask==3.0.3\n"}
    includes = follow_includes(files, others.get)
    assert includes.problems == []
    assert set(includes.texts) == {"deps/dev.txt", "common/base.txt"}
    deps = collect_dependencies(files, includes=includes)
    assert {(d.name, d.version, d.file) for d in deps} == {
        ("pytest", "8.0.0", "deps/dev.txt"),
        ("flask", "3.0.3", "common/base.txt"),
    }


def test_a_cycle_is_reported_and_each_file_read_once(tmp_path: Path) -> None:
    """a.txt ↔ b.txt: both parsed once, one `requirements-include-cycle` finding, the review ends."""
    app = _write(
        tmp_path / "app",
        {
            "requirements.txt": "-r a.txt\n",
            "a.txt": "-r b.txt\nrequests==2.19.1\n",
            "b.txt": "-r a.txt\nflask==3.0.3\n",
        },
    )
    findings = _dependency_findings(app, _index(tmp_path))
    cycles = [f for f in findings if f.rule == "requirements-include-cycle"]
    assert [(f.file, f.extra["include"], f.severity) for f in cycles] == [("b.txt", "a.txt", "low")]
    assert "(a.txt → b.txt → a.txt)" in cycles[0].message
    vulnerable = [f for f in findings if f.rule == "vulnerable-dependency"]
    assert [(f.file, f.extra["package"]) for f in vulnerable] == [("a.txt", "requests")]
    files = {"requirements.txt": "-r requirements.txt\nflask==3.0.3\n"}
    [self_loop] = follow_includes(files).problems
    assert self_loop.rule == "requirements-include-cycle"
    assert [d.name for d in collect_dependencies(files)] == ["flask"]


def test_a_path_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    """`-r ../../etc/passwd` (and an absolute path) are not read, whatever exists there: a medium finding each."""
    outside = tmp_path / "etc"
    outside.mkdir()
    (outside / "passwd").write_text("requests==2.19.1\n", encoding="utf-8")  # must never be read
    app = _write(
        tmp_path / "repo" / "app",
        {"requirements.txt": "-r ../../etc/passwd\n--requirement=/etc/passwd\nflask==3.0.3\n"},
    )
    asked: list[str] = []

    def read(rel: str) -> str | None:
        asked.append(rel)
        return None

    includes = follow_includes({"requirements.txt": (app / "requirements.txt").read_text()}, read)
    assert asked == []
    assert [(f.rule, f.extra["include"], f.severity) for f in includes.problems] == [
        ("requirements-include-outside-repository", "../../etc/passwd", "medium"),
        ("requirements-include-outside-repository", "/etc/passwd", "medium"),
    ]
    findings = _dependency_findings(app, _index(tmp_path))
    assert {f.rule for f in findings} == {"requirements-include-outside-repository"}
    assert all(f.extra.get("package") != "requests" for f in findings)


def test_a_missing_include_is_reported() -> None:
    """An include naming a file the repository does not have is a low finding, not an error."""
    [missing] = follow_includes({"requirements.txt": "-c pins/missing.txt\n"}, lambda rel: None).problems
    assert (missing.rule, missing.extra["include"]) == ("requirements-include-missing", "pins/missing.txt")
    assert "pins/missing.txt" in missing.message
