"""The `make run` path end to end: migrate, demo, `orchestrator up`, Ctrl-C — in an empty directory.

The processes run with none of our settings in their environment, so every default applies exactly
as on a fresh machine: the SQLite catalog and the SQLite broker under ./var of the working directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.harness import free_port, wait_until
from orchestrator.config import Settings

DEMO_APP_COUNT = 8
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}


def orchestrator_command() -> list[str]:
    """The installed console script next to this interpreter, else `python -m orchestrator.cli`."""
    script = Path(sys.executable).with_name("orchestrator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "orchestrator.cli"]


def fresh_env(**extra: str) -> dict[str, str]:
    """Our environment minus every orchestrator setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_ENV}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one orchestrator command to completion in `cwd`."""
    return subprocess.run(
        [*orchestrator_command(), *args], cwd=cwd, env=fresh_env(**env), capture_output=True, text=True, timeout=120
    )


def descendants(pid: int) -> dict[int, str]:
    """Every live descendant of `pid` (from /proc), with its command line."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                try:
                    found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                frontier.append(child)
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@dataclass
class Up:
    """A running `orchestrator up` and where its output goes."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def log(self) -> str:
        """Everything it printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Until the supervisor has announced the API (or exited)."""
        wait_until(lambda: "ready: API at" in self.log() or self.popen.poll() is not None, timeout=90, what="up ready")
        assert self.popen.poll() is None, f"up exited early:\n{self.log()[-4000:]}"

    def children(self) -> dict[int, str]:
        """The supervisor's process tree below it."""
        return descendants(self.popen.pid)

    def ctrl_c(self) -> int:
        """SIGINT to up's process group, as a terminal's Ctrl-C; returns its exit code."""
        os.killpg(self.popen.pid, signal.SIGINT)
        return self.popen.wait(timeout=90)

    def kill(self) -> None:
        """Last resort in teardown: SIGKILL up and every process below it."""
        for pid in [*self.children(), self.popen.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=10)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory, migrated, with the demo loaded (what `make run` does before `up`)."""
    return tmp_path_factory.mktemp("make-run")


@pytest.fixture(scope="module")
def demo_token(workdir: Path) -> str:
    """The admin token the first `orchestrator demo --if-empty` printed."""
    migrated = run_cli(["migrate"], workdir)
    assert migrated.returncode == 0, migrated.stderr
    assert (workdir / "var" / "orchestrator.db").exists()
    demo = run_cli(["demo", "--if-empty"], workdir)
    assert demo.returncode == 0, demo.stderr
    match = re.search(r"ORCHESTRATOR_TOKEN=(\S+)", demo.stdout)
    assert match, demo.stdout
    return match.group(1)


@pytest.fixture
def start_up(workdir: Path, demo_token: str, tmp_path: Path) -> Iterator[Callable[[], Up]]:
    """Start `orchestrator up` on a free port in the work directory; killed at teardown if still running."""
    started: list[Up] = []

    def _start() -> Up:
        port = free_port()
        log_path = tmp_path / f"up-{len(started)}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [*orchestrator_command(), "up", "--port", str(port), "--stop-timeout", "30"],
                cwd=workdir,
                env=fresh_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        up = Up(popen, log_path, f"http://127.0.0.1:{port}")
        started.append(up)
        return up

    yield _start
    for up in started:
        if up.popen.poll() is None:
            up.kill()


def test_demo_runs_once(workdir: Path, demo_token: str) -> None:
    """A second `demo --if-empty` leaves the catalog alone and prints no token."""
    again = run_cli(["demo", "--if-empty"], workdir)
    assert again.returncode == 0, again.stderr
    assert "ORCHESTRATOR_TOKEN" not in again.stdout
    assert demo_token not in again.stdout + again.stderr
    refused = run_cli(["demo"], workdir)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: the catalog already has")


@pytest.mark.slow
def test_up_serves_and_stops_cleanly_on_ctrl_c(start_up: Callable[[], Up], demo_token: str) -> None:
    """`up` serves /healthz and the demo catalog, then Ctrl-C stops every child and exits 0."""
    up = start_up()
    up.wait_ready()
    assert httpx.get(f"{up.base_url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = httpx.get(f"{up.base_url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text  # the SQLite catalog and the SQLite broker both answer
    apps = httpx.get(f"{up.base_url}/api/v1/apps", headers={"Authorization": f"Bearer {demo_token}"}, timeout=10)
    assert apps.status_code == 200, apps.text
    assert len(apps.json()["items"]) == DEMO_APP_COUNT

    tree = up.children()
    roles = {role for role in ("api", "worker", "scheduler") if any(f"cli {role}" in cmd for cmd in tree.values())}
    assert {"api", "worker"} <= roles, tree
    wait_until(lambda: "ready." in up.log(), timeout=60, what="worker ready")  # Celery's own start-up line

    assert up.ctrl_c() == 0, up.log()[-4000:]
    assert not [pid for pid in tree if alive(pid)], "children survived Ctrl-C"
    log = up.log()
    assert "SIGINT: stopping" in log and "all stopped" in log
    for role in roles:
        assert re.search(rf"^{role}\s+\| ", log, re.M), f"no output forwarded from {role}"


@pytest.mark.slow
def test_up_stops_everything_when_a_child_dies(start_up: Callable[[], Up]) -> None:
    """When the worker dies, `up` stops the API and the scheduler and exits non-zero naming the worker."""
    up = start_up()
    up.wait_ready()
    tree = up.children()
    worker = next(pid for pid, cmd in tree.items() if "cli worker" in cmd)
    os.kill(worker, signal.SIGKILL)
    assert up.popen.wait(timeout=90) == 1
    assert "error: worker was killed by SIGKILL unexpectedly" in up.log()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in tree):
        time.sleep(0.1)
    assert not [pid for pid in tree if alive(pid)], "children survived the worker's death"


def test_services_refuse_a_bad_policy(tmp_path: Path) -> None:
    """`up` and `worker` exit 2 naming the bad policy field, before starting anything."""
    policy = tmp_path / "policy.yaml"
    policy.write_text("data_classes: {public: {sandbox_ttl_days: -1}}\n")
    for command in (["up"], ["worker"]):
        result = run_cli(command, tmp_path, POLICY_FILE=str(policy))
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and "data_classes" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "var").exists(), "nothing may be created before the policy is valid"


def test_up_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """`up` on a database that was never migrated exits 2 and says to run `orchestrator migrate`."""
    result = run_cli(["up", "--port", str(free_port())], tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "orchestrator migrate" in result.stderr


def test_worker_refuses_unknown_queues(tmp_path: Path) -> None:
    """`worker --queues` names the unknown queue and the known ones."""
    result = run_cli(["worker", "--queues", "ingest,bogus"], tmp_path)
    assert result.returncode == 2
    assert "bogus" in result.stderr and "notifications" in result.stderr
