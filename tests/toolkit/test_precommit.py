"""The repository's `microapp-review` hook through `pre-commit try-repo`, on a temporary git repository of a
generated app: a staged secret is blocked, a clean change passes, an unstaged secret does not count.

The hook is `language: system`: it runs the `microapp-review` on PATH. Here that is this checkout's
(a one-line shim); tests/toolkit/test_light_install.py runs it from a venv holding only the light install."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.toolkit.generate import Answers, generate

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PRE_COMMIT = BIN / "pre-commit"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    root = tmp_path / "app"
    generate(Answers("hooked-app", "processor", "internal", "maker" + "@" + "example.com"), root, load_policy(None))
    git(root, "init", "-q")
    git(root, "config", "user.email", "maker" + "@" + "example.com")
    git(root, "config", "user.name", "Maker")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    return root


def review_shim(tmp_path: Path) -> Path:
    """A folder with a `microapp-review` that runs this checkout's code (the console script's target)."""
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    shim = shims / "microapp-review"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m orchestrator.reviews.checks.maker "$@"\n')
    shim.chmod(0o755)
    return shims


def try_repo(root: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{review_shim(tmp_path)}{os.pathsep}{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),  # the `microapp-review` on PATH runs this checkout's code
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
    }
    return subprocess.run(
        [str(PRE_COMMIT), "try-repo", str(REPO), "microapp-review"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def aws_key() -> str:
    rng = random.Random(11)
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def test_staged_secret_is_blocked_and_clean_change_passes(app_repo: Path, tmp_path: Path) -> None:
    (app_repo / "app" / "settings.py").write_text(f"KEY = '{aws_key()}'\n")
    git(app_repo, "add", "app/settings.py")
    blocked = try_repo(app_repo, tmp_path)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "secrets/aws-access-key-id" in blocked.stdout and "Failed" in blocked.stdout
    assert aws_key() not in blocked.stdout

    (app_repo / "app" / "settings.py").write_text("TIMEOUT_SECONDS = 10\n")
    git(app_repo, "add", "app/settings.py")
    clean = try_repo(app_repo, tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout

    # A secret in the working tree but not staged is set aside by pre-commit: it does not block this commit.
    (app_repo / "app" / "settings.py").write_text(f"KEY = '{aws_key()}'\n")
    unstaged = try_repo(app_repo, tmp_path)
    assert unstaged.returncode == 0, unstaged.stdout + unstaged.stderr
    assert "KEY" in (app_repo / "app" / "settings.py").read_text()  # and is put back afterwards


def test_the_hook_reviews_the_staged_files(app_repo: Path, tmp_path: Path) -> None:
    """The staged files are what the hook is given: a secret in a file staged alongside others is found and
    named by its file, and the manifest (not staged) still decides the data class."""
    (app_repo / "app" / "one.py").write_text("TIMEOUT_SECONDS = 10\n")
    (app_repo / "app" / "two.py").write_text(f"\n\nKEY = '{aws_key()}'\n")
    git(app_repo, "add", "app/one.py", "app/two.py")
    blocked = try_repo(app_repo, tmp_path)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "app/two.py:3" in blocked.stdout and "data class: internal" in blocked.stdout
    assert "files: 2 " in blocked.stdout  # the two staged files, not the whole app
