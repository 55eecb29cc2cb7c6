"""The brokers side by side: the embedded default (SQLite) against Redis, same worker, same tasks.

    python -m bench.broker [--tasks 40] [--task-ms 50] [--singles 30] [--idle-seconds 10]
                           [--redis redis://127.0.0.1:6379/14] [--skip-redis]

For each broker — the embedded one polling alone (EMBEDDED_BROKER_WAKEUP=false, "emb-poll"), the
embedded one with its doorbell (the default), Redis — it starts a real Celery worker (`workers.app`,
prefork, -c 2, prefetch 1, acks late: the project's settings) and measures:

1. throughput: --tasks tasks that each sleep --task-ms, sent at once → tasks/s (the ideal is
   2 × 1000 / task-ms);
2. latency: --singles tasks sent one at a time, each awaited → p50/p95 from send to the task's
   start, i.e. what one hop of the pipeline adds (a push is three hops);
3. idle cost: the worker's CPU seconds (all its processes) over --idle-seconds with nothing to do,
   the price of polling.

Redis is the baseline measured in the same run; the ratios are what to compare across machines.
The Redis database given is flushed before and after (use one nothing else uses).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import redis

from workers.app import app as celery_app

SLEEP_TASK = "bench.broker_sleep"
STAMP_TASK = "bench.broker_stamp"


@celery_app.task(name=SLEEP_TASK, queue="ingest")
def sleep_task(seconds: float, stamp_dir: str, name: str) -> None:
    """Sleep like a handler that waits on I/O, then leave a stamp."""
    time.sleep(seconds)
    (Path(stamp_dir) / name).write_text(str(time.time()))


@celery_app.task(name=STAMP_TASK, queue="ingest")
def stamp_task(stamp_dir: str, name: str) -> None:
    """Record when the task started (wall clock, compared with the sender's)."""
    (Path(stamp_dir) / name).write_text(str(time.time()))


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of `pid` and its live children (the prefork pool)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _measure(
    label: str, broker_url: str, database_url: str, args: argparse.Namespace, tmp: Path, *, wakeup: bool = True
) -> dict[str, float]:
    from bench.harness import spawn, wait_until
    from orchestrator.tasks import sender

    stamps = tmp / f"stamps-{label}"
    stamps.mkdir()
    env = {
        "BROKER_URL": broker_url,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "WARNING",
        "EMBEDDED_BROKER_WAKEUP": "true" if wakeup else "false",
    }
    worker = spawn(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "ingest", "-c", "2",
         "--include", "bench.broker", "--loglevel", "INFO", "-n", f"bench-broker-{label}-{os.getpid()}@%h",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        env=env, log_path=tmp / f"worker-{label}.log",
    )  # fmt: skip
    try:
        wait_until(lambda: "ready." in worker.log(), timeout=60, what=f"{label} worker ready")
        app = sender(broker_url)
        time.sleep(1.0)

        # Idle first, while nothing has been sent yet.
        before = _cpu_seconds(worker.popen.pid)
        time.sleep(args.idle_seconds)
        idle = _cpu_seconds(worker.popen.pid) - before

        started = time.monotonic()
        names = [f"t-{i}" for i in range(args.tasks)]
        for name in names:
            app.send_task(SLEEP_TASK, args=(args.task_ms / 1000, str(stamps), name), queue="ingest")
        wait_until(lambda: all((stamps / n).exists() for n in names), timeout=600, interval=0.01, what="all tasks")
        throughput = args.tasks / (time.monotonic() - started)

        latencies: list[float] = []
        for i in range(args.singles):
            name = f"s-{i}-{uuid.uuid4().hex[:6]}"
            sent = time.time()
            app.send_task(STAMP_TASK, args=(str(stamps), name), queue="ingest")
            path = stamps / name

            def stamped(path: Path = path) -> bool:
                return path.exists() and path.read_text() != ""

            wait_until(stamped, timeout=60, interval=0.002, what="stamp")
            latencies.append((float(path.read_text()) - sent) * 1000)
            time.sleep(random.uniform(0.0, 0.1))  # no phase lock with the poll interval
    finally:
        worker.stop()
    latencies.sort()
    return {
        "tasks_per_s": throughput,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[max(0, int(len(latencies) * 0.95) - 1)],
        "idle_cpu_pct": 100 * idle / args.idle_seconds,
    }


def main() -> None:
    """Run the measurements and print them with their ratios to Redis."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--task-ms", type=float, default=50)
    parser.add_argument("--singles", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-broker-") as name:
        tmp = Path(name)
        database_url = f"sqlite:///{tmp / 'orchestrator.db'}"
        results = {
            # Polling alone (EMBEDDED_BROKER_WAKEUP=false), then with the doorbell (the default).
            "emb-poll": _measure(
                "emb-poll", f"sqla+sqlite:///{tmp / 'poll.db'}", database_url, args, tmp, wakeup=False
            ),
            "embedded": _measure("embedded", f"sqla+sqlite:///{tmp / 'broker.db'}", database_url, args, tmp),
        }
        if not args.skip_redis:
            redis.Redis.from_url(args.redis).flushdb()
            try:
                results["redis"] = _measure("redis", args.redis, database_url, args, tmp)
            finally:
                redis.Redis.from_url(args.redis).flushdb()

    ideal = 2 * 1000 / args.task_ms
    print(f"{args.tasks} tasks of {args.task_ms:.0f} ms on 2 processes (ideal {ideal:.0f}/s); {args.singles} hops")
    print(f"{'broker':<10} {'tasks/s':>8} {'hop p50':>9} {'hop p95':>9} {'idle CPU':>9}")
    for label, figures in results.items():
        print(
            f"{label:<10} {figures['tasks_per_s']:>8.1f} {figures['p50_ms']:>7.1f}ms {figures['p95_ms']:>7.1f}ms"
            f" {figures['idle_cpu_pct']:>8.2f}%"
        )
    if "redis" in results:
        base = results["redis"]
        for label in ("emb-poll", "embedded"):
            figures = results[label]
            print(
                f"{label} / redis: throughput {figures['tasks_per_s'] / base['tasks_per_s']:.2f}x, "
                f"hop p50 {figures['p50_ms'] / base['p50_ms']:.1f}x, hop p95 {figures['p95_ms'] / base['p95_ms']:.1f}x"
            )


if __name__ == "__main__":
    main()
