"""The review engine end to end on real directories: safety bounds, manifest handling, verdicts."""

from __future__ import annotations

import os
import random
import string
from pathlib import Path

import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.errors import NotFound
from orchestrator.reviews.checks.engine import ReviewTimeout, review_directory

MANIFEST = """\
name: Expense helper
owner: maker@example.com
data_class: {data_class}
description: files expense reports
connectors: [slack]
scopes: [repo:read]
external_endpoints: []
"""


def token() -> str:
    """A GitHub-shaped token built at run time."""
    rng = random.Random(5)
    return "gh" + "p_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def make_app(root: Path, data_class: str = "internal", files: dict[str, str] | None = None) -> Path:
    """A small app directory with a manifest and the given files."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "microapp.yaml").write_text(MANIFEST.format(data_class=data_class), encoding="utf-8")
    for rel, text in (files or {"app.py": "print('hello')\n"}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def test_clean_internal_app_passes(tmp_path: Path) -> None:
    """A clean app in a data class that auto-approves passes."""
    result = review_directory(make_app(tmp_path / "app"), policy=load_policy())
    assert (
        result.verdict == "pass"
        and result.findings == []
        and result.manifest is not None
        and result.manifest["name"] == "Expense helper"
    )


def test_clean_restricted_app_needs_approval(tmp_path: Path) -> None:
    """Restricted apps never auto-approve, even when clean."""
    result = review_directory(make_app(tmp_path / "app", "restricted"), policy=load_policy())
    assert result.verdict == "needs_approval"


def test_secret_fails_and_to_dict_has_the_public_shape(tmp_path: Path) -> None:
    """A committed token fails the review; to_dict lists findings without the value."""
    value = token()
    app = make_app(tmp_path / "app", files={"src/settings.py": f"GITHUB = '{value}'\n"})
    result = review_directory(app, policy=load_policy())
    assert result.verdict == "fail"
    doc = result.to_dict()
    assert value not in repr(doc)
    (finding,) = doc["findings"]
    assert {"check", "rule", "file", "line", "severity", "fingerprint", "preview"} <= set(finding)
    assert (finding["file"], finding["line"], finding["rule"]) == ("src/settings.py", 1, "github-token")


def test_data_class_argument_overrides_the_manifest(tmp_path: Path) -> None:
    """The explicit data class wins over the manifest's."""
    result = review_directory(make_app(tmp_path / "app"), policy=load_policy(), data_class="restricted")
    assert result.stats["data_class"] == "restricted" and result.verdict == "needs_approval"
    regulated = review_directory(make_app(tmp_path / "app"), policy=load_policy(), data_class="regulated")
    assert regulated.verdict == "fail"  # repo:read is not an allowed scope for regulated data


def test_missing_and_malformed_manifest_are_findings(tmp_path: Path) -> None:
    """No manifest, invalid YAML or invalid fields produce findings, never exceptions."""
    (tmp_path / "none").mkdir()
    (tmp_path / "none" / "a.py").write_text("x = 1\n")
    result = review_directory(tmp_path / "none", policy=load_policy())
    assert [f.rule for f in result.findings] == ["manifest-missing"] and result.stats["data_class"] == "internal"
    bad = make_app(tmp_path / "bad")
    (bad / "microapp.yaml").write_text("name: [unclosed\n")
    assert [f.rule for f in review_directory(bad, policy=load_policy()).findings] == ["manifest-invalid-yaml"]
    (bad / "microapp.yaml").write_text("name: x\nowner: not-an-email\ndata_class: internal\nscopes: [admin:org]\n")
    rules = {f.rule for f in review_directory(bad, policy=load_policy()).findings}
    assert rules == {"manifest-invalid", "scope-not-allowed"}  # the raw document is still checked


def test_symlinks_never_lead_outside_the_checkout(tmp_path: Path) -> None:
    """A symlink to a secret file outside the checkout is listed as skipped and never read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(f"root:x:0:0\nTOKEN={token()}\n")
    app = make_app(tmp_path / "app")
    os.symlink(outside / "passwd", app / "passwd")
    os.symlink(outside, app / "linked_dir")
    result = review_directory(app, policy=load_policy())
    assert result.findings == []
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert "outside the checkout" in reasons["passwd"] and "outside the checkout" in reasons["linked_dir"]


def test_git_binary_and_oversized_files_are_skipped(tmp_path: Path) -> None:
    """`.git` is not entered; binary and oversized files are skipped and listed."""
    app = make_app(tmp_path / "app", files={".git/config": f"token = {token()}\n"})
    (app / "logo.bin.dat").write_bytes(b"\x00\x01" + token().encode())
    (app / "big.txt").write_text("a" * (2 * 1024 * 1024))
    result = review_directory(app, policy=load_policy())
    assert result.findings == []
    reasons = {s["path"]: s["reason"] for s in result.skipped}
    assert reasons["logo.bin.dat"] == "binary file" and "larger than" in reasons["big.txt"]
    assert not any(s["path"].startswith(".git") for s in result.skipped)


def test_file_count_limit_makes_the_review_incomplete(tmp_path: Path) -> None:
    """Past max_files the walk stops and a finding says the review is incomplete."""
    app = make_app(tmp_path / "app", files={f"m{i}.py": "x = 1\n" for i in range(10)})
    policy = load_policy()
    policy = policy.model_copy(update={"review_limits": policy.review_limits.model_copy(update={"max_files": 5})})
    result = review_directory(app, policy=policy)
    assert [f.rule for f in result.findings] == ["review-incomplete"] and result.verdict == "needs_approval"


def test_time_budget_raises_review_timeout(tmp_path: Path) -> None:
    """A review past its deadline raises the typed ReviewTimeout."""
    app = make_app(tmp_path / "app", files={f"m{i}.py": "x = 1\n" for i in range(50)})
    with pytest.raises(ReviewTimeout):
        review_directory(app, policy=load_policy(), deadline_seconds=0)


def test_nonexistent_path_is_not_found(tmp_path: Path) -> None:
    """Reviewing a path that is not a directory raises NotFound."""
    with pytest.raises(NotFound):
        review_directory(tmp_path / "nope", policy=load_policy())
