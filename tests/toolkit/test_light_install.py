"""The light install: `microapp-review` from a fresh venv holding only packages/microapp-review.

The venv is built once for the module from a copy of this checkout's source (pip resolves the light
distribution's dependencies from the configured index, as a maker's pip would). In it the service's
libraries are not importable, the review passes a freshly generated app, and blocks a staged secret both
from the command line and through `pre-commit try-repo` with that venv first on PATH. Two cheap tests keep
the distribution honest without building it: its dependencies are the root's `review` group, and every
orchestrator module the checks import (lazily too) is one it ships.
"""

from __future__ import annotations

import ast
import json
import os
import random
import shutil
import string
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

from orchestrator.catalog.policy import load_policy
from orchestrator.toolkit.generate import Answers, generate

REPO = Path(__file__).resolve().parents[2]
LIGHT = REPO / "packages" / "microapp-review"
SERVICE_LIBRARIES = (
    "celery",
    "kombu",
    "redis",
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "apscheduler",
    "slack_sdk",
    "psycopg",
    "httpx",
    "typer",
)


def aws_key() -> str:
    """An AWS-access-key-shaped value, made here so that no key sits in the repository."""
    rng = random.Random(18)
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + "234567") for _ in range(16))


def light_env() -> dict[str, str]:
    """The environment without this checkout on PYTHONPATH: the venv must run its own copy."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv with `pip install packages/microapp-review` and nothing else (built from a copy of the source)."""
    tmp = tmp_path_factory.mktemp("light")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "*.egg-info")
    shutil.copytree(REPO / "orchestrator", src / "orchestrator", ignore=ignore)
    shutil.copytree(LIGHT, src / "packages" / "microapp-review", ignore=ignore)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(src / "packages" / "microapp-review")],
        env=light_env(),
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield venv


@pytest.fixture
def app_repo(tmp_path: Path) -> Path:
    """A generated processor app (internal data), committed in a new git repository."""
    root = tmp_path / "app"
    generate(Answers("light-app", "processor", "internal", "maker" + "@" + "example.com"), root, load_policy(None))
    for args in (
        ["init", "-q"],
        ["config", "user.email", "maker" + "@" + "example.com"],
        ["config", "user.name", "Maker"],
        ["add", "-A"],
        ["commit", "-qm", "first"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, timeout=60)
    return root


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env or light_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_light_install_has_none_of_the_service_libraries(light_venv: Path, tmp_path: Path) -> None:
    probe = (
        "import importlib.util, json, sys\n"
        "names = sys.argv[1:]\n"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))\n"
    )
    # detect-secrets (and requests with it) is not a service library, but the review does without it
    # (secret_rules_ds.py), so the light install leaves it out.
    extra = ["detect_secrets", "requests", "orchestrator.db", "orchestrator.cli", "orchestrator.reviews.checks.engine"]
    names = [*SERVICE_LIBRARIES, *extra]
    done = run([str(light_venv / "bin" / "python"), "-c", probe, *names], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [n for n in SERVICE_LIBRARIES if found[n]] == []
    assert found["orchestrator.db"] is False and found["orchestrator.cli"] is False
    assert found["detect_secrets"] is False and found["requests"] is False
    assert found["orchestrator.reviews.checks.engine"] is True


@pytest.mark.slow
def test_the_light_review_passes_a_generated_app_and_blocks_a_staged_secret(
    light_venv: Path, app_repo: Path, tmp_path: Path
) -> None:
    review = str(light_venv / "bin" / "microapp-review")
    clean = run([review, str(app_repo)], cwd=tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "verdict: pass" in clean.stdout

    secret = app_repo / "app" / "settings.py"
    secret.write_text(f"KEY = '{aws_key()}'\n")
    subprocess.run(["git", "add", "app/settings.py"], cwd=app_repo, check=True, capture_output=True)
    # What the hook runs: the staged files, from the app's folder.
    blocked = run([review, "--files", "app/settings.py"], cwd=app_repo)
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "app/settings.py:1" in blocked.stdout and "secrets/aws-access-key-id" in blocked.stdout
    as_json = run([review, "--files", "app/settings.py", "--json"], cwd=app_repo)
    assert as_json.returncode == 1
    result = json.loads(as_json.stdout)
    assert result["verdict"] == "fail"
    assert {(f["check"], f["rule"], f["file"]) for f in result["findings"]} >= {
        ("secrets", "aws-access-key-id", "app/settings.py")
    }
    assert aws_key() not in blocked.stdout + as_json.stdout

    # The repository's hook through pre-commit, with only the light install providing `microapp-review`.
    env = light_env()
    env["PATH"] = f"{light_venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    hooked = run([pre_commit, "try-repo", str(REPO), "microapp-review"], cwd=app_repo, env=env)
    assert hooked.returncode == 1, hooked.stdout + hooked.stderr
    assert "secrets/aws-access-key-id" in hooked.stdout and "Failed" in hooked.stdout

    secret.write_text("TIMEOUT_SECONDS = 10\n")
    subprocess.run(["git", "add", "app/settings.py"], cwd=app_repo, check=True, capture_output=True)
    passed = run([pre_commit, "try-repo", str(REPO), "microapp-review"], cwd=app_repo, env=env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout


def test_the_light_distribution_depends_on_the_review_group() -> None:
    light = tomllib.loads((LIGHT / "pyproject.toml").read_text())
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert sorted(light["project"]["dependencies"]) == sorted(root["dependency-groups"]["review"])
    assert set(root["dependency-groups"]["review"]) <= set(root["project"]["dependencies"])
    assert light["project"]["version"] == root["project"]["version"]
    assert light["project"]["scripts"]["microapp-review"] == root["project"]["scripts"]["microapp-review"]


def _shipped_modules() -> set[str]:
    """The orchestrator modules setup.py puts in the light distribution (orchestrator.reviews.checks whole)."""
    tree = ast.parse((LIGHT / "setup.py").read_text())
    keep = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and node.target.id == "LIGHT_MODULES"
        and node.value is not None
    )
    return {
        package if module == "__init__" else f"{package}.{module}"
        for package, names in keep.items()
        for module in names
    }


def test_every_module_the_checks_import_is_shipped_by_the_light_distribution() -> None:
    graph = grimp.build_graph("orchestrator")
    imported = graph.find_upstream_modules("orchestrator.reviews.checks", as_package=True)
    outside = sorted(
        m for m in imported if not m.startswith("orchestrator.reviews.checks.") and m not in _shipped_modules()
    )
    assert outside == [], f"the checks import modules packages/microapp-review/setup.py does not ship: {outside}"
    assert "orchestrator.config" in imported  # the graph does see the checks' lazy imports
