"""Timers at scale: lateness of 100,000 deadlines, scheduler memory, and rebuild time after a restart.

    python -m bench.timers [--deadlines 100000] [--span 120] [--lead 40] [--concurrency 2]
                           [--redis redis://127.0.0.1:6379/11] [--database-url …]

Creates --deadlines `probe` deadlines due uniformly over --span seconds starting --lead seconds
from now (a probe runs the whole timer path — wake-up, Celery task, compare-and-set to fired — but
emits no lifecycle event), then runs a real Celery worker and the real scheduler process on Redis:

1. the scheduler starts, rebuilds its timers from the database and is stopped (SIGTERM) and started
   again: "rebuild" is the second start's time to load every timer (target < 10 s), and
   "start → leading" adds the process start-up;
2. the restarted scheduler fires every deadline: lateness is the task start (`fired_at`, taken as
   the task begins) minus the due time, p50/p99/max (target p99 < 2 s);
3. the scheduler's peak RSS (VmHWM) over the run (target < 300 MB).

Baseline, same run, same broker and worker: deadlines enqueued by this process at their due time
with no scheduler, so the ratios show what the scheduler adds to bare Celery. The Redis database
given is flushed before and after (use one nothing else uses).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_for(log: Path, pattern: str, timeout: float, proc: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    while time.monotonic() < deadline:
        found = regex.search(log.read_text(errors="replace")) if log.exists() else None
        if found:
            return found
        if proc.poll() is not None:
            raise SystemExit(f"process exited early; see {log}")
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {pattern!r} in {log}")


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _insert(count: int, start: datetime, span: float, kind: str = "probe") -> None:
    from sqlalchemy import insert

    from orchestrator.db import session_scope
    from orchestrator.timers.models import Deadline, DeadlineStatus

    step = span / max(1, count - 1)
    rows = [
        {"kind": kind, "due_at": start + timedelta(seconds=i * step), "status": DeadlineStatus.pending, "payload": {}}
        for i in range(count)
    ]
    for chunk in range(0, count, 10_000):
        with session_scope() as session:
            session.execute(insert(Deadline), rows[chunk : chunk + 10_000])


def _lateness(since_id: int) -> list[float]:
    from sqlalchemy import select
    from sqlmodel import col

    from orchestrator.db import session_scope
    from orchestrator.timers.models import Deadline

    with session_scope(write=False) as session:
        rows = session.execute(
            select(col(Deadline.due_at), col(Deadline.fired_at)).where(col(Deadline.id) > since_id)
        ).all()
    return sorted((fired - due).total_seconds() for due, fired in rows if fired is not None)


def _pending() -> int:
    from sqlalchemy import func, select
    from sqlmodel import col

    from orchestrator.db import session_scope
    from orchestrator.timers.models import Deadline, DeadlineStatus

    with session_scope(write=False) as session:
        count = session.execute(select(func.count()).where(col(Deadline.status) == DeadlineStatus.pending)).scalar()
        return int(count or 0)


def _max_id() -> int:
    from schedules.loader import max_id

    return max_id()


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _baseline(count: int) -> list[float]:
    """Deadlines enqueued by this process exactly at their due time: the floor of broker + worker."""
    from orchestrator.clock import utcnow
    from workers.tasks.timers import fire_deadlines

    first = _max_id()
    start = utcnow() + timedelta(seconds=1)
    _insert(count, start, count / 100)  # 100 per second
    from sqlalchemy import select
    from sqlmodel import col

    from orchestrator.db import session_scope
    from orchestrator.timers.models import Deadline

    with session_scope(write=False) as session:
        due = session.execute(select(col(Deadline.id), col(Deadline.due_at)).where(col(Deadline.id) > first)).all()
    for deadline_id, due_at in sorted(due, key=lambda r: r[1]):
        time.sleep(max(0.0, (due_at - datetime.now(UTC)).total_seconds()))
        fire_deadlines.apply_async(args=([deadline_id],), queue="ingest")
    deadline = time.monotonic() + 60
    while _pending() and time.monotonic() < deadline:
        time.sleep(0.2)
    return _lateness(first)


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadlines", type=int, default=100_000)
    parser.add_argument("--span", type=float, default=120.0, help="seconds over which the deadlines fall due")
    parser.add_argument("--lead", type=float, default=40.0, help="seconds before the first one is due")
    parser.add_argument("--concurrency", type=int, default=2, help="worker processes")
    parser.add_argument("--baseline", type=int, default=500, help="deadlines in the no-scheduler baseline")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11", help="flushed before and after")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()

    import redis

    workdir = Path(tempfile.mkdtemp(prefix="bench-timers-"))
    database_url = args.database_url or f"sqlite:///{workdir}/orchestrator.db"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BROKER_URL": args.redis,
        "REDIS_URL": args.redis,
        "LOG_JSON": "true",
        "ARCHIVE_URL": str(workdir / "archive"),
        "SCHEDULER_HORIZON_SECONDS": str(int(args.lead + args.span + 120)),
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    client = redis.Redis.from_url(args.redis)
    client.flushdb()
    from orchestrator.db import migrate

    migrate(database_url)
    worker_log = workdir / "worker.log"
    worker = _spawn(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "ingest", "-c", str(args.concurrency),
         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env, worker_log,
    )  # fmt: skip
    schedulers: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(3)
        print(f"baseline: {args.baseline} deadlines enqueued at their due time by this process …", flush=True)
        base = _baseline(args.baseline)
        first_id = _max_id()
        start = datetime.now(UTC) + timedelta(seconds=args.lead)
        t0 = time.monotonic()
        _insert(args.deadlines, start, args.span)
        print(f"inserted {args.deadlines} deadlines in {time.monotonic() - t0:.1f} s, due over {args.span:.0f} s")
        scheduler_cmd = [sys.executable, "-m", "orchestrator.cli", "scheduler"]
        cold_log = workdir / "scheduler-1.log"
        cold = _spawn(scheduler_cmd, env, cold_log)
        schedulers.append(cold)
        cold_rebuild = float(_wait_for(cold_log, r'"seconds": ([0-9.]+), "event": "timers rebuilt"', 120, cold)[1])
        _wait_for(cold_log, r'"scheduler leading"', 30, cold)
        cold_rss = _peak_rss_mb(cold.pid)
        _stop(cold)
        warm_log = workdir / "scheduler-2.log"
        spawned = time.monotonic()
        warm = _spawn(scheduler_cmd, env, warm_log)
        schedulers.append(warm)
        match = _wait_for(warm_log, r'"timers": (\d+), "slots": (\d+), "seconds": ([0-9.]+)', 120, warm)
        _wait_for(warm_log, r'"scheduler leading"', 30, warm)
        start_to_leading = time.monotonic() - spawned
        timers, slots, rebuild = int(match[1]), int(match[2]), float(match[3])
        if datetime.now(UTC) > start:
            print("warning: the restart finished after the first deadline was due; raise --lead", flush=True)
        peak = 0.0
        limit = time.monotonic() + args.lead + args.span + 180
        while _pending() and time.monotonic() < limit:
            peak = max(peak, _peak_rss_mb(warm.pid))
            time.sleep(1)
        peak = max(peak, _peak_rss_mb(warm.pid), cold_rss)
        late = _lateness(first_id)
        _report(args, base, late, timers=timers, slots=slots, cold=cold_rebuild, rebuild=rebuild,
                start_to_leading=start_to_leading, peak=peak, pending=_pending())  # fmt: skip
    finally:
        for proc in schedulers:
            _stop(proc)
        _stop(worker)
        client.flushdb()
        shutil.rmtree(workdir, ignore_errors=True)


def _report(args: Any, base: list[float], late: list[float], **figures: Any) -> None:
    p50, p99 = _pct(late, 0.50), _pct(late, 0.99)
    b50, b99 = _pct(base, 0.50), _pct(base, 0.99)
    result = {
        "deadlines": args.deadlines,
        "fired": len(late),
        "still_pending": figures["pending"],
        "lateness_p50_s": round(p50, 3),
        "lateness_p99_s": round(p99, 3),
        "lateness_max_s": round(late[-1], 3) if late else None,
        "early": sum(1 for v in late if v < 0),
        "baseline_p50_s": round(b50, 3),
        "baseline_p99_s": round(b99, 3),
        "ratio_p50_vs_baseline": round(p50 / b50, 2) if b50 > 0 else None,
        "ratio_p99_vs_baseline": round(p99 / b99, 2) if b99 > 0 else None,
        "timers_loaded": figures["timers"],
        "apscheduler_slot_jobs": figures["slots"],
        "rebuild_cold_s": figures["cold"],
        "rebuild_after_restart_s": figures["rebuild"],
        "restart_to_leading_s": round(figures["start_to_leading"], 2),
        "scheduler_peak_rss_mb": round(figures["peak"], 1),
    }
    print(json.dumps(result, indent=2))
    verdict = [
        ("p99 lateness < 2 s", p99 < 2),
        ("scheduler RSS < 300 MB", figures["peak"] < 300),
        ("rebuild < 10 s", figures["rebuild"] < 10),
    ]
    for name, ok in verdict:
        print(f"{'PASS' if ok else 'FAIL'}  {name}")


if __name__ == "__main__":
    main()
