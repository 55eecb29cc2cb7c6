"""Memory of an idle `orchestrator worker` (and optionally the scheduler): RSS and PSS of the process tree.

    python -m bench.memory [--settle 20] [--concurrency 2] [--broker redis://127.0.0.1:6379/14] [--scheduler]

Starts the real worker command (default queues, prefork pool) on a fresh data directory with the
SQLite catalog, waits until it has been idle for --settle seconds, then sums RSS and PSS over the
worker's whole process tree from /proc/PID/smaps_rollup (PSS splits pages shared between the
parent and its forked pool processes, so it is the figure that adds up across processes). With
--scheduler, the scheduler process (where the relay and the periodic sweeps run as jobs) is
measured beside it.

Target (issue #19): the idle worker under 250 MB RSS.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import spawn


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = task / "children"
        if children.exists():
            out += [int(p) for p in children.read_text().split()]
    return out


def tree(pid: int) -> list[int]:
    """`pid` and every descendant."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += _children(current)
    return pids


def rollup(pid: int) -> dict[str, int]:
    """Rss and Pss of one process in kB (from /proc/PID/smaps_rollup)."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name] = int(rest.split()[0])
    return values


def measure(pid: int) -> tuple[int, list[tuple[int, str, int, int]]]:
    """(process count, [(pid, command, rss kB, pss kB)]) of the tree under `pid`."""
    rows = []
    for p in tree(pid):
        try:
            values = rollup(p)
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:90]
        except (FileNotFoundError, ProcessLookupError):
            continue
        rows.append((p, cmd, values.get("Rss", 0), values.get("Pss", 0)))
    return len(rows), rows


def main() -> None:
    """Start the worker (and the scheduler with --scheduler), let it idle, print RSS/PSS per process."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds of idling before measuring")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--scheduler", action="store_true", help="measure the scheduler process too")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    env = {
        "DATA_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp / 'catalog.db'}",
        "BROKER_URL": args.broker,
        "REDIS_URL": args.broker if args.broker.startswith("redis") else "",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    cli = [sys.executable, "-m", "orchestrator.cli"]
    procs = {"worker": spawn([*cli, "worker", "--concurrency", str(args.concurrency)], env=env,
                             log_path=tmp / "worker.log")}  # fmt: skip
    if args.scheduler:
        procs["scheduler"] = spawn([*cli, "scheduler"], env=env, log_path=tmp / "scheduler.log")
    try:
        time.sleep(args.settle)
        print(f"idle processes after {args.settle:.0f}s; broker {args.broker.split('://')[0]}; "
              f"worker --concurrency {args.concurrency}")  # fmt: skip
        for name, proc in procs.items():
            if proc.popen.poll() is not None:
                sys.exit(f"{name} exited early:\n{proc.log()[-2000:]}")
            count, rows = measure(proc.popen.pid)
            for pid, cmd, rss, pss in rows:
                print(f"  {name:<10} pid {pid:<8} RSS {rss / 1024:7.1f} MB  PSS {pss / 1024:7.1f} MB  {cmd}")
            total_rss = sum(r[2] for r in rows) / 1024
            total_pss = sum(r[3] for r in rows) / 1024
            print(f"{name}: {count} processes, RSS {total_rss:.1f} MB, PSS {total_pss:.1f} MB"
                  + ("  (target: worker RSS < 250 MB)" if name == "worker" else ""))  # fmt: skip
    finally:
        for proc in procs.values():
            proc.stop()


if __name__ == "__main__":
    main()
