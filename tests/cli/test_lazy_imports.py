"""The CLI starts light: a remote command loads no database layer, Celery, FastAPI or review engine.

Each check runs the real CLI in a fresh interpreter (the way a shell runs it) against a real API
process serving the demo catalog, and reports which heavy modules that interpreter loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.harness import REPO_ROOT, start_api
from orchestrator.catalog.demo import load_demo
from orchestrator.catalog.policy import get_policy
from orchestrator.db import session_scope

HEAVY = ("celery", "sqlalchemy", "sqlmodel", "orchestrator.reviews.checks.engine", "fastapi", "httpx")

# Runs the CLI's entry point, then (even on its SystemExit) writes the heavy modules it loaded to stderr.
SCRIPT = f"""
import json, sys
from orchestrator.cli import main
sys.argv = ["orchestrator", *sys.argv[1:]]
try:
    main()
finally:
    sys.stderr.write("LOADED " + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)) + "\\n")
"""


@dataclass
class Run:
    """One CLI run: exit code, stdout, and the heavy modules it loaded."""

    code: int
    stdout: str
    loaded: list[str]


@dataclass
class DemoApi:
    """A running API with the demo catalog and its admin token."""

    url: str
    token: str


@pytest.fixture
def demo_api(sqlite_url: str, tmp_path: Path) -> Iterator[DemoApi]:
    """The real API (uvicorn, SQLite) serving the demo catalog."""
    with session_scope() as session:
        result = load_demo(session, policy=get_policy())
    assert result.loaded and result.token
    proc, url = start_api(env={"DATABASE_URL": sqlite_url, "BROKER_URL": "memory://"}, log_path=tmp_path / "api.log")
    try:
        yield DemoApi(url=url, token=result.token)
    finally:
        proc.stop()


def cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """Run `orchestrator ARGS` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    [marker] = [line for line in done.stderr.splitlines() if line.startswith("LOADED ")]
    return Run(code=done.returncode, stdout=done.stdout, loaded=json.loads(marker.removeprefix("LOADED ")))


def test_list_against_the_api_loads_nothing_heavy(demo_api: DemoApi) -> None:
    """`orchestrator list` fetches and prints the catalog with none of the heavy modules loaded."""
    run = cli("list", env={"ORCHESTRATOR_URL": demo_api.url, "ORCHESTRATOR_TOKEN": demo_api.token})
    assert run.code == 0, run.stdout
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["ID", "NAME", "STAGE", "CLASS", "OWNER", "EXPIRES"]
    assert len(lines) > 3 and lines[-1].endswith(" apps")
    assert run.loaded == []

    shown = cli("show", lines[1].split()[0], "--json", env={"ORCHESTRATOR_URL": demo_api.url})
    assert shown.code == 1  # no token: the API refuses, and the error path stays light too
    assert shown.loaded == []


def test_help_of_every_group_loads_nothing_heavy() -> None:
    """`--help` builds every command group (all options and their choices) without heavy imports."""
    run = cli("list", "--help")
    assert run.code == 0
    assert "--data-class" in run.stdout and "regulated" in run.stdout
    assert run.loaded == []
    for group in ("events", "credentials", "approvals", "audit", "token", "archive"):
        helped = cli(group, "--help")
        assert helped.code == 0 and "Usage" in helped.stdout, group
        assert helped.loaded == [], group


def test_a_database_command_does_load_the_database_layer(sqlite_url: str) -> None:
    """The check sees what a command imports: `events failed` reads the database, so SQLAlchemy is there."""
    run = cli("events", "failed", "--json", env={"DATABASE_URL": sqlite_url})
    assert run.code == 0
    assert run.stdout == ""
    assert {"sqlalchemy", "sqlmodel"} <= set(run.loaded)
