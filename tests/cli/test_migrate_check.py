"""`orchestrator migrate --check [--wait S]`: what an init container runs while the migration Job works."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.harness import free_port
from orchestrator.cli import build


def _run(*args: str, database_url: str) -> tuple[int, str]:
    from orchestrator.config import get_settings
    from orchestrator.db import dispose_engines

    get_settings.cache_clear()
    dispose_engines()
    result = CliRunner().invoke(build(), ["migrate", *args], env={"DATABASE_URL": database_url})
    return result.exit_code, result.output


def test_check_says_behind_then_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty database is behind (exit 1, nothing changed); after `migrate` the check passes (exit 0)."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    code, output = _run("--check", database_url=url)
    assert code == 1 and "behind the newest schema; run `orchestrator migrate`" in output
    assert _run("--check", database_url=url)[0] == 1, "the check applied nothing"
    assert _run(database_url=url)[0] == 0
    code, output = _run("--check", "--wait", "5", database_url=url)
    assert code == 0 and "database at the newest schema" in output


def test_check_of_an_unreachable_database_waits_then_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens: it keeps trying for --wait seconds, then exit 1 naming the problem, no traceback."""
    url = f"postgresql+psycopg://nobody:secret-pw@127.0.0.1:{free_port()}/none"
    monkeypatch.setenv("DATABASE_URL", url)
    code, output = _run("--check", "--wait", "1", database_url=url)
    assert code == 1 and "unreachable (OperationalError)" in output
    assert "secret-pw" not in output and "Traceback" not in output
