"""`orchestrator review PATH`: the maker tool, exercised through Typer's CliRunner."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli.review import app

runner = CliRunner()
MANIFEST = "name: Tool\nowner: maker@example.com\ndata_class: internal\nconnectors: []\nscopes: [repo:read]\n"


def make_app(root: Path, extra: dict[str, str] | None = None) -> Path:
    """A minimal app directory."""
    root.mkdir()
    (root / "microapp.yaml").write_text(MANIFEST)
    (root / "main.py").write_text("print('ok')\n")
    for rel, text in (extra or {}).items():
        (root / rel).write_text(text)
    return root


def test_clean_directory_exits_zero_with_a_table(tmp_path: Path) -> None:
    """A clean app prints the verdict and exits 0."""
    result = runner.invoke(app, [str(make_app(tmp_path / "a"))])
    assert result.exit_code == 0, result.output
    assert "verdict: pass" in result.output


def test_failing_review_exits_one_and_json_has_the_documented_shape(tmp_path: Path) -> None:
    """A secret makes the verdict fail (exit 1); --json prints verdict and findings."""
    rng = random.Random(1)
    value = "sk" + "_live_" + "".join(rng.choice(string.ascii_letters) for _ in range(24))
    path = make_app(tmp_path / "a", {"pay.py": f"STRIPE = '{value}'\n"})
    result = runner.invoke(app, [str(path), "--json"])
    assert result.exit_code == 1
    assert value not in result.output
    doc = json.loads(result.output)
    assert doc["verdict"] == "fail"
    keys = {"check", "rule", "file", "line", "severity", "fingerprint", "preview"}
    assert doc["findings"] and all(keys <= set(f) for f in doc["findings"])


def test_data_class_option_changes_the_outcome(tmp_path: Path) -> None:
    """--data-class restricted turns a clean app into needs_approval (exit 0)."""
    result = runner.invoke(app, [str(make_app(tmp_path / "a")), "--data-class", "restricted"])
    assert result.exit_code == 0 and "verdict: needs_approval" in result.output


def test_nonexistent_path_exits_two_without_traceback(tmp_path: Path) -> None:
    """A missing path is a clear error with exit code 2."""
    result = runner.invoke(app, [str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert "does not exist" in result.output and "Traceback" not in result.output


def test_unknown_data_class_exits_two(tmp_path: Path) -> None:
    """An unknown --data-class is rejected with exit code 2."""
    result = runner.invoke(app, [str(make_app(tmp_path / "a")), "--data-class", "secretive"])
    assert result.exit_code == 2 and "unknown data class" in result.output


def test_review_is_a_command_of_the_main_cli(tmp_path: Path) -> None:
    """`orchestrator review PATH --json` works through orchestrator.cli.build() without a database."""
    from orchestrator.cli import build

    path = make_app(tmp_path / "a")
    result = runner.invoke(build(), ["review", str(path), "--json", "--data-class", "public"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["verdict"] == "pass" and doc["findings"] == []
    failing = runner.invoke(build(), ["review", str(make_app(tmp_path / "b", {"k.py": f"K = '{token()}'\n"}))])
    assert failing.exit_code == 1 and "verdict: fail" in failing.output


def token() -> str:
    """A GitHub-shaped token built at run time."""
    rng = random.Random(3)
    return "gh" + "p_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
