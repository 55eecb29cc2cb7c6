"""Throughput of `GET /api/v1/apps` (50 a page) against a bare endpoint serving the same bytes, with wrk.

    python -m bench.list_throughput [--apps 1000,100000] [--seconds 8] [--connections 4]
                                    [--source /path/to/another/checkout] [--pg postgresql+psycopg://…/test]

For each size it creates a PostgreSQL database of its own, loads the catalog as `bench.catalog`
does, starts one uvicorn process of `bench.catalog:bench_app` (the real API plus a bare endpoint
that answers a constant body: the bytes of the admin listing's first page), and runs wrk against
the listing (admin token, then maker token) and the bare endpoint, alternating, --rounds times each;
it prints the best requests/s and the ratio to the bare endpoint measured in the same run, and the
API process's CPU time per request (and that ratio), which a shared machine's load disturbs less.
`--source` serves the API from another checkout (e.g. the main branch) for a before/after on the
same machine and data.

Target (issue #19): the listing at >= 0.25x the bare endpoint's throughput. Needs `wrk` on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.catalog import BARE_PATH, BODY_ENV, _load, _token, _up
from bench.harness import REPO_ROOT, free_port, wait_until


def wrk(url: str, *, seconds: float, connections: int, token: str | None = None) -> tuple[float, int]:
    """(requests per second, requests) wrk measured on `url` (non-2xx answers fail the bench)."""
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency"]
    if token:
        args += ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw error answers on {url}:\n{out}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    assert rate and count, out
    return float(rate.group(1)), int(count.group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Load, serve, run wrk; print requests/s per endpoint and the ratios to the bare endpoint."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--apps", default="1000,100000")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per endpoint, alternating")
    parser.add_argument("--source", type=Path, default=REPO_ROOT, help="checkout whose API is served")
    default_pg = os.environ.get("PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--pg", default=default_pg)
    args = parser.parse_args()
    # SIGTERM ends the run through the `finally`s: the server stopped, the database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk)")

    admin_engine = create_engine(args.pg, isolation_level="AUTOCOMMIT")
    print(f"GET /api/v1/apps?limit=50 vs a bare endpoint, wrk -t1 -c{args.connections} {args.seconds:.0f}s, "
          f"1 uvicorn process, API from {args.source}, {os.cpu_count()} CPUs (shared)")  # fmt: skip
    for size in [int(s) for s in args.apps.split(",")]:
        name = f"bench_list_{uuid.uuid4().hex[:8]}"
        with admin_engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
        tmp = Path(tempfile.mkdtemp(prefix="bench-list-"))
        api = None
        try:
            _load(url, size)
            tokens = {"admin": _token(url, "admin"), "maker": _token(url, "maker")}
            port = free_port()
            body_file = tmp / "body.json"
            env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "DATA_DIR": str(tmp),
                   BODY_ENV: str(body_file), "PYTHONPATH": str(args.source), "PYTHONUNBUFFERED": "1"}  # fmt: skip
            with (tmp / "api.log").open("wb") as log:
                api = subprocess.Popen(
                    [sys.executable, "-m", "uvicorn", "bench.catalog:bench_app", "--factory", "--port", str(port),
                     "--log-level", "warning", "--no-access-log"],
                    cwd=args.source, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )  # fmt: skip
            base = f"http://127.0.0.1:{port}"
            wait_until(partial(_up, base), timeout=180, what="API up")
            sample = httpx.get(f"{base}/api/v1/apps", params={"limit": "50"},
                               headers={"Authorization": f"Bearer {tokens['admin']}"}, timeout=30)  # fmt: skip
            sample.raise_for_status()
            body_file.write_bytes(sample.content)
            list_url = f"{base}/api/v1/apps?limit=50"
            runs: dict[str, list[float]] = {"admin listing": [], "maker listing": [], "bare endpoint": []}
            # CPU time of the API process per request: on a shared machine wall-clock throughput swings
            # with the neighbours' load, the CPU a request costs much less.
            cpu: dict[str, list[float]] = {label: [] for label in runs}
            wrk(list_url, seconds=2, connections=args.connections, token=tokens["admin"])  # warm-up
            wrk(f"{base}{BARE_PATH}", seconds=2, connections=args.connections)
            for _ in range(args.rounds):
                for label, target, token in (
                    ("admin listing", list_url, tokens["admin"]),
                    ("bare endpoint", f"{base}{BARE_PATH}", None),
                    ("maker listing", list_url, tokens["maker"]),
                ):
                    before = cpu_seconds(api.pid)
                    rate, count = wrk(target, seconds=args.seconds, connections=args.connections, token=token)
                    runs[label].append(rate)
                    cpu[label].append((cpu_seconds(api.pid) - before) * 1000 / count)
            bare = max(runs["bare endpoint"])
            bare_cpu = min(cpu["bare endpoint"])
            print(f"{size} apps, page of {len(sample.content)} bytes:")
            for label, values in runs.items():
                best, cost = max(values), min(cpu[label])
                print(f"  {label:<16} {best:>7.0f} req/s (runs {', '.join(f'{v:.0f}' for v in values)}), "
                      f"ratio to bare {best / bare:.2f};  API CPU {cost:5.2f} ms/request, "
                      f"ratio to bare {bare_cpu / cost:.2f}")  # fmt: skip
        finally:
            if api is not None:
                api.terminate()
                try:
                    api.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    api.kill()
            from orchestrator.db import reset_engines

            reset_engines()
            with admin_engine.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            time.sleep(0.1)
    admin_engine.dispose()


if __name__ == "__main__":
    main()
