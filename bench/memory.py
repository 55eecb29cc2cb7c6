"""Memory of an idle `orchestrator worker` (and optionally the scheduler): RSS and PSS of the process tree.

    python -m bench.memory [--settle 20] [--concurrency 2] [--broker redis://127.0.0.1:6379/14] [--scheduler]
                           [--source /work/main --source .]

Starts the real worker command (default queues, prefork pool) on a fresh data directory with the
SQLite catalog, waits until it has been idle for --settle seconds, then sums RSS and PSS over the
worker's whole process tree from /proc/PID/smaps_rollup (PSS splits pages shared between the
parent and its forked pool processes, so it is the figure that adds up across processes). With
--scheduler, the scheduler process (where the relay and the periodic sweeps run as jobs) is
measured beside it. With --source (repeatable) the worker of each checkout is measured in turn in
the same run, and the totals are printed as ratios against the first (the baseline).

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

from bench.harness import REPO_ROOT, spawn


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


def run_once(source: Path, args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Start the worker (and the scheduler) of the checkout `source`, let it idle; {name: (RSS, PSS) in MB}."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    env = {
        "DATA_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp / 'catalog.db'}",
        "BROKER_URL": args.broker,
        "REDIS_URL": args.broker if args.broker.startswith("redis") else "",
        "LOG_LEVEL": "WARNING",
        # -P keeps the working directory (this checkout) off sys.path, so PYTHONPATH picks the source.
        "PYTHONPATH": str(source),
    }
    subprocess.run([sys.executable, "-P", "-m", "orchestrator.cli", "migrate"], env={**os.environ, **env},
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    cli = [sys.executable, "-P", "-m", "orchestrator.cli"]
    procs = {"worker": spawn([*cli, "worker", "--concurrency", str(args.concurrency)], env=env,
                             log_path=tmp / "worker.log")}  # fmt: skip
    if args.scheduler:
        procs["scheduler"] = spawn([*cli, "scheduler"], env=env, log_path=tmp / "scheduler.log")
    totals: dict[str, tuple[float, float]] = {}
    try:
        time.sleep(args.settle)
        print(f"{source}: idle processes after {args.settle:.0f}s; broker {args.broker.split('://')[0]}; "
              f"worker --concurrency {args.concurrency}")  # fmt: skip
        for name, proc in procs.items():
            if proc.popen.poll() is not None:
                sys.exit(f"{name} exited early:\n{proc.log()[-2000:]}")
            count, rows = measure(proc.popen.pid)
            for pid, cmd, rss, pss in rows:
                print(f"  {name:<10} pid {pid:<8} RSS {rss / 1024:7.1f} MB  PSS {pss / 1024:7.1f} MB  {cmd}")
            total_rss = sum(r[2] for r in rows) / 1024
            total_pss = sum(r[3] for r in rows) / 1024
            totals[name] = (total_rss, total_pss)
            print(f"{name}: {count} processes, RSS {total_rss:.1f} MB, PSS {total_pss:.1f} MB"
                  + ("  (target: worker RSS < 250 MB)" if name == "worker" else ""))  # fmt: skip
    finally:
        for proc in procs.values():
            proc.stop()
    return totals


def main() -> None:
    """Measure the idle worker of each --source checkout in turn (default: this one); print RSS/PSS and ratios."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--settle", type=float, default=20.0, help="seconds of idling before measuring")
    parser.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--scheduler", action="store_true", help="measure the scheduler process too")
    parser.add_argument("--source", action="append", type=Path, default=[],
                        help="checkout to measure (repeatable; the first is the baseline, e.g. "
                             "--source /work/main --source .); default: this checkout")  # fmt: skip
    args = parser.parse_args()
    sources = [s.resolve() for s in args.source] or [REPO_ROOT]
    results = [(source, run_once(source, args)) for source in sources]
    if len(results) > 1:
        base = results[0][1]
        print("same run, against the first source:")
        for source, totals in results:
            for name, (rss, pss) in totals.items():
                print(f"  {name:<10} RSS {rss:7.1f} MB ({rss / base[name][0]:.2f}x)  "
                      f"PSS {pss:7.1f} MB ({pss / base[name][1]:.2f}x)  {source}")  # fmt: skip


if __name__ == "__main__":
    main()
