"""`orchestrator token create` and the admin commands' behaviour at the edges (help, errors)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner, Result

from orchestrator.auth.models import Role
from orchestrator.auth.service import TOKEN_PREFIX, authenticate, hash_token
from orchestrator.cli import build
from orchestrator.db import get_engine, session_scope
from tests.conftest import REPO_ROOT
from tests.factories import auth

TOKEN_RE = re.compile(rf"^{TOKEN_PREFIX}[A-Za-z0-9_-]{{40,}}$")


def cli(*args: str) -> Result:
    """Invoke the real CLI in-process."""
    return CliRunner().invoke(build(), list(args))


def create(*args: str) -> str:
    """Run `token create` and return what it printed on stdout, asserting it is the token alone."""
    result = cli("token", "create", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and TOKEN_RE.match(lines[0]), result.stdout
    return lines[0]


def dump_table(url: str, table: str) -> str:
    """Every column of every row of `table`, as one string."""
    with get_engine(url).connect() as conn:
        return repr([tuple(row) for row in conn.execute(text(f"SELECT * FROM {table}"))])


def test_token_create_prints_token_and_stores_only_its_hash(db_url: str) -> None:
    """The token is printed alone on stdout; the database keeps its SHA-256 digest and never the token."""
    token = create("--role", "approver", "--name", "release-bot", "--email", "Approver@Example.com")
    for table in ("api_token", "audit_entry"):
        assert token not in dump_table(db_url, table)
        assert token[len(TOKEN_PREFIX) :] not in dump_table(db_url, table)
    with session_scope(write=False) as session:
        row = authenticate(session, token)
        assert row.token_hash == hash_token(token)
        assert (row.name, Role(row.role), row.person_email) == ("release-bot", Role.approver, "approver@example.com")
    assert "release-bot" in dump_table(db_url, "audit_entry")  # the creation is audited, without the secret


def test_each_token_is_new(db_url: str) -> None:
    """Two tokens with the same name are different secrets with different rows."""
    first = create("--role", "maker", "--name", "same", "--email", "m@example.com")
    second = create("--role", "maker", "--name", "same", "--email", "m@example.com")
    assert first != second
    with get_engine(db_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM api_token")).scalar_one() == 2


def test_created_token_works_against_the_api(client: TestClient, db_url: str) -> None:
    """A token from the CLI authenticates on the HTTP API with its role."""
    admin = create("--role", "ADMIN", "--name", "ops")
    assert client.get("/api/v1/apps", headers=auth(admin)).status_code == 200
    assert client.get("/api/v1/apps", headers=auth(admin + "x")).status_code == 401


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--role", "boss", "--name", "x"], "--role"),
        (["--role", "admin", "--name", "x", "--email", "not-an-email"], "--email"),
        (["--role", "admin", "--name", "   "], "--name"),
        (["--name", "x"], "--role"),
        (["--role", "admin"], "--name"),
    ],
    ids=["unknown-role", "bad-email", "blank-name", "no-role", "no-name"],
)
def test_token_create_refuses_bad_options(sqlite_url: str, args: list[str], complaint: str) -> None:
    """Bad options exit 2 naming the option, print no token and store nothing."""
    result = cli("token", "create", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert complaint in result.stderr
    assert dump_table(sqlite_url, "api_token") == "[]"


def test_token_create_as_a_real_process(sqlite_url: str) -> None:
    """Run as the console command, stdout is exactly the token and a newline (scripts can capture it)."""
    env = {**os.environ, "DATABASE_URL": sqlite_url, "LOG_JSON": "true"}
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "token", "create", "--role", "maker", "--name", "ci"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert TOKEN_RE.match(done.stdout.removesuffix("\n")), done.stdout
    assert done.stdout.count("\n") == 1
    assert done.stdout.strip() not in done.stderr


@pytest.mark.parametrize(
    "command", [["audit", "verify"], ["audit", "export"], ["token", "create", "--role", "admin", "--name", "x"]]
)
def test_unmigrated_database_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Against a database without tables the commands exit 2 with one line of advice, no traceback."""
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        result = cli(*command)
    finally:
        get_settings.cache_clear()
        reset_engines()
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot use the database")
    assert "orchestrator migrate" in result.stderr
    assert "Traceback" not in result.output


def test_export_to_unwritable_file(sqlite_url: str, tmp_path: Path) -> None:
    """An --output that cannot be written is reported, not a traceback."""
    result = cli("audit", "export", "--output", str(tmp_path / "missing-dir" / "out.jsonl"))
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


@pytest.mark.parametrize(
    "command", [["audit"], ["audit", "verify"], ["audit", "export"], ["token"], ["token", "create"]]
)
def test_help(command: list[str]) -> None:
    """Every admin command documents itself under --help."""
    result = cli(*command, "--help")
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
