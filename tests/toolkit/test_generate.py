"""`orchestrator new`: every template x data class is generated once, then the generated app's own tests
run in a subprocess (no network: its upstreams are httpx MockTransports) and the real review runs on it.

Public and internal apps must pass the review; restricted and regulated ones (whose policy does not
auto-approve) must come out needs_approval with no finding at all. A combination the policy does not
allow (LLM use for regulated data) must be refused by the generator with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from orchestrator.catalog.manifest import parse_manifest
from orchestrator.catalog.policy import Policy, load_policy
from orchestrator.cli import build
from orchestrator.errors import ValidationFailed
from orchestrator.reviews.checks.engine import review_directory
from orchestrator.toolkit.generate import TEMPLATES, Answers, generate

CLASSES = ("public", "internal", "restricted", "regulated")
REFUSED = {("llm-connector", "regulated")}
COMBOS = [(t, c) for t in TEMPLATES for c in CLASSES if (t, c) not in REFUSED]
OWNER = "maker" + "@" + "example.com"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(None)


@pytest.fixture(scope="module", params=COMBOS, ids=[f"{t}-{c}" for t, c in COMBOS])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, policy: Policy) -> Path:
    template, data_class = request.param
    target = tmp_path_factory.mktemp("apps") / f"{template}-{data_class}"
    generate(Answers(name=f"my-{template}", template=template, data_class=data_class, owner=OWNER), target, policy)
    return target


def test_generated_app_passes_its_own_tests(generated: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"],
        cwd=generated,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def test_generated_app_passes_the_review(generated: Path, policy: Policy) -> None:
    manifest = parse_manifest(yaml.safe_load((generated / "microapp.yaml").read_text()))
    result = review_directory(generated, policy=policy)
    active = [f for f in result.active_findings() if not f.extra.get("informational")]
    assert active == []
    expected = "pass" if policy.for_class(manifest.data_class.value).auto_approve_clean else "needs_approval"
    assert result.verdict == expected
    assert manifest.data_class.value in ("public", "internal") or expected == "needs_approval"


def test_generated_app_has_every_part(generated: Path) -> None:
    for rel in (
        "microapp.yaml",
        "README.md",
        "requirements.txt",
        ".pre-commit-config.yaml",
        ".github/workflows/ci.yml",
        "app/main.py",
        "app/logs.py",
        "tests/test_unit.py",
        "tests/test_smoke.py",
    ):
        assert (generated / rel).is_file(), rel
    workflow = yaml.safe_load((generated / ".github/workflows/ci.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in workflow["jobs"]["test-and-review"]["steps"])
    assert "pytest" in steps and "microapp-review ." in steps
    assert "microapp-review" in (generated / ".pre-commit-config.yaml").read_text()
    assert not list(generated.rglob("*.tmpl"))


def test_llm_template_is_refused_for_regulated_data(tmp_path: Path, policy: Policy) -> None:
    with pytest.raises(ValidationFailed, match="does not allow LLM use for regulated"):
        generate(Answers("bot", "llm-connector", "regulated", OWNER), tmp_path / "bot", policy)
    assert not (tmp_path / "bot").exists()


def cli(*args: str) -> Result:
    return CliRunner().invoke(build(), ["new", *args])


def test_cli_writes_an_app_from_flags(tmp_path: Path) -> None:
    target = tmp_path / "expense-helper"
    flags = ["--template", "bff", "--data-class", "Internal", "--owner", OWNER, "--dir", str(target)]
    result = cli("expense-helper", *flags)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    manifest = yaml.safe_load((target / "microapp.yaml").read_text())
    assert manifest["id"] == "expense-helper" and manifest["data_class"] == "internal"
    assert manifest["scopes"] == ["files:read"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["My App", "--template", "bff", "--owner", OWNER], "not a valid app name"),
        (["app-a", "--template", "bff", "--data-class", "secret", "--owner", OWNER], "unknown data class 'secret'"),
        (["app-a", "--template", "website", "--owner", OWNER], "unknown template 'website'"),
        (["app-a", "--template", "bff", "--owner", "not-an-email"], "owner"),
        (["app-a", "--template", "bff"], "--owner is required"),
    ],
)
def test_cli_refuses_bad_answers(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(*args, "--dir", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "app-a").mkdir()
    (tmp_path / "app-a" / "notes.txt").write_text("mine")
    result = cli("app-a", "--template", "bff", "--owner", OWNER, "--dir", str(tmp_path / "app-a"))
    assert result.exit_code == 2
    assert "already exists and is not empty" in result.output
    assert sorted(p.name for p in (tmp_path / "app-a").iterdir()) == ["notes.txt"]


def test_cli_asks_for_missing_answers_in_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("orchestrator.cli.new._interactive", lambda: True)
    target = tmp_path / "out"
    answers = f"hook-relay\nprocessor\npublic\n{OWNER}\n"
    result = CliRunner().invoke(build(), ["new", "--dir", str(target)], input=answers)
    assert result.exit_code == 0, result.output
    assert "Template (bff, processor, llm-connector) [bff]:" in result.output
    manifest = yaml.safe_load((target / "microapp.yaml").read_text())
    assert (manifest["id"], manifest["data_class"], manifest["owner"]) == ("hook-relay", "public", OWNER)
    assert (target / "app" / "store.py").is_file()
