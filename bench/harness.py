"""Real processes for tests and benchmarks: a Celery worker on Redis, and a uvicorn server on a free port.

Both run as subprocesses with the test's DATABASE_URL/BROKER_URL, so tests exercise the real
broker, real acks and real process death (SIGKILL), never eager mode.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout: float = 30.0, interval: float = 0.1, what: str = "") -> None:
    """Poll `predicate` until it is true; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or predicate}")


@dataclass
class Proc:
    """A child process with its log file; stop() ends it and its children."""

    popen: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        """What the process has written so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole process group (no clean shutdown)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, then SIGKILL if it lingers."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            self.kill()


_spawned: list[Proc] = []


def spawn(args: list[str], *, env: dict[str, str], log_path: Path) -> Proc:
    """Start `args` in its own process group with `env` added to ours, output to `log_path`."""
    full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    # The child gets its own copy of the descriptor; ours is closed as soon as it has started.
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            args, cwd=REPO_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    proc = Proc(popen=popen, log_path=log_path)
    _spawned.append(proc)
    return proc


def reap_all() -> None:
    """Kill every process a test spawned and left running, so none outlives its test.

    A leftover worker would keep consuming the session's Redis queues with another test's
    settings and steal its tasks.
    """
    while _spawned:
        # Even when the leader has exited, its group (e.g. pool children) may live on.
        _spawned.pop().kill()


def start_worker(
    *,
    env: dict[str, str],
    log_path: Path,
    queues: str = "ingest,reviews,notifications,sunset",
    concurrency: int = 2,
    pool: str = "prefork",
    name: str | None = None,
) -> Proc:
    """A real Celery worker for `workers.app` consuming `queues`; waits until it is ready."""
    args = [
        sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "-c", str(concurrency),
        "-P", pool, "--loglevel", "INFO", "-n", name or f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    proc = spawn(args, env=env, log_path=log_path)
    wait_until(lambda: "ready." in proc.log() or proc.popen.poll() is not None, timeout=60, what="worker ready")
    if proc.popen.poll() is not None:
        raise AssertionError(f"worker exited at start:\n{proc.log()[-3000:]}")
    return proc


def start_scheduler(*, env: dict[str, str], log_path: Path) -> Proc:
    """The real scheduler (`orchestrator scheduler`), leading; runs the re-publishing sweeps (the relay too).

    Its leader lock and nudge channel get names of their own unless `env` sets them, so that
    schedulers of other tests on the same Redis never take its place.
    """
    unique = f"{os.getpid()}-{time.monotonic_ns()}"
    env = {"SCHEDULER_LOCK_NAME": f"test-lock-{unique}", "DEADLINE_NUDGE_CHANNEL": f"test-nudge-{unique}", **env}
    proc = spawn([sys.executable, "-m", "orchestrator.cli", "scheduler"], env=env, log_path=log_path)
    leading = '"scheduler leading"'
    wait_until(lambda: leading in proc.log() or proc.popen.poll() is not None, timeout=60, what="scheduler leading")
    if proc.popen.poll() is not None:
        raise AssertionError(f"scheduler exited at start:\n{proc.log()[-3000:]}")
    return proc


def start_api(
    *, env: dict[str, str], log_path: Path, argv: Callable[[int], list[str]] | None = None
) -> tuple[Proc, str]:
    """The real API under uvicorn on a free port; returns the process and its base URL.

    `argv` builds another command serving the API on the given port (default: `orchestrator api`).
    """
    port = free_port()
    command = (
        argv(port)
        if argv is not None
        else [sys.executable, "-m", "orchestrator.cli", "api", "--host", "127.0.0.1", "--port", str(port)]
    )
    proc = spawn(command, env=env, log_path=log_path)
    base = f"http://127.0.0.1:{port}"

    def _up() -> bool:
        if proc.popen.poll() is not None:
            return True
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(_up, timeout=60, what="API /healthz")
    if proc.popen.poll() is not None:
        raise AssertionError(f"API exited at start:\n{proc.log()[-3000:]}")
    return proc, base
