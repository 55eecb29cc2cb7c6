"""The default data directory: found from any sub-folder, never created empty by an admin command,
and created by the services that need it (`worker` on the embedded broker)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from bench.harness import wait_until
from tests.test_make_run import fresh_env, orchestrator_command, run_cli


def test_admin_commands_find_the_catalog_from_a_sub_folder(tmp_path: Path) -> None:
    """After `migrate` in the deployment's folder, `audit verify` from a sub-folder uses that catalog."""
    deployment = tmp_path / "deployment"
    deep = deployment / "notes" / "today"
    deep.mkdir(parents=True)
    migrated = run_cli(["migrate"], deployment)
    assert migrated.returncode == 0, migrated.stderr
    result = run_cli(["audit", "verify"], deep)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (deep / "var").exists() and not (deployment / "notes" / "var").exists()


def test_admin_commands_refuse_when_no_catalog_exists(tmp_path: Path) -> None:
    """Outside any deployment an admin command exits 2 with advice and creates no empty catalog."""
    result = run_cli(["audit", "verify"], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no catalog at" in result.stderr and "orchestrator migrate" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "var" / "orchestrator.db").exists()


def test_worker_creates_the_folder_of_its_embedded_broker(tmp_path: Path, sqlite_template: Path) -> None:
    """`worker` in a folder without ./var (catalog elsewhere) starts instead of failing to open its broker."""
    catalog = tmp_path / "catalog.db"
    shutil.copy(sqlite_template, catalog)
    workdir = tmp_path / "empty"
    workdir.mkdir()
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*orchestrator_command(), "worker", "--concurrency", "1", "--pool", "solo"],
            cwd=workdir,
            env=fresh_env(DATABASE_URL=f"sqlite:///{catalog}"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: b"ready" in log.read_bytes() or proc.poll() is not None, timeout=60, what="the worker to start"
        )
        time.sleep(1)
        assert proc.poll() is None, log.read_text()
        assert (workdir / "var" / "broker.db").exists()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
