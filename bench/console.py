"""Web console page times on the demo catalog, beside `/healthz` on the same server, same run.

    python -m bench.console [--runs 50]

Loads the demo catalog into a throw-away SQLite database, serves it with the real API (`orchestrator
api` on a free port), signs in through the console's form with the demo admin token, then fetches each
main page `--runs` times in turn. Prints p50/p95 of each page, the ratio of its p50 to `/healthz`'s
(what rendering the page costs over the bare request path) and whether the target (p95 < 200 ms) holds.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.cli import _free_port, _prepare, _serve

TARGET_MS = 200.0
PAGES = [
    "/healthz",
    "/console/",
    "/console/?q=expense",
    "/console/apps/expense-helper",
    "/console/inbox",
    "/console/expiring",
    "/console/orphans",
    "/console/audit",
    "/console/operations",
    "/console/kpis",
    "/docs",
]


def _sign_in(client: httpx.Client, token: str) -> None:
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, "no CSRF field on the sign-in page"
    answer = client.post("/console/login", data={"csrf": csrf.group(1), "token": token})
    if answer.status_code != 303:
        raise SystemExit(f"sign-in failed: {answer.status_code} {answer.text[:300]}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; exit 1 when a page misses the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-console-") as folder:
        tmp = Path(folder)
        env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp / 'orchestrator.db'}",
            "BROKER_URL": "memory://",
            "DATA_DIR": str(tmp),
            "LOG_LEVEL": "WARNING",
        }
        token = _prepare(env)
        port = _free_port()
        proc = _serve(env, port, tmp / "api.log")
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                _sign_in(client, token)
                times: dict[str, list[float]] = {path: [] for path in PAGES}
                for path in PAGES:  # warm-up: template compilation, first queries
                    client.get(path).raise_for_status()
                for _ in range(args.runs):
                    for path in PAGES:
                        started = time.perf_counter()
                        client.get(path).raise_for_status()
                        times[path].append((time.perf_counter() - started) * 1000)
        finally:
            proc.terminate()
            proc.wait(10)
    base = statistics.median(times["/healthz"])
    print(f"{'page':34} {'p50 ms':>8} {'p95 ms':>8} {'× healthz':>10}")
    missed = []
    for path, samples in times.items():
        p50 = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{path:34} {p50:8.1f} {p95:8.1f} {p50 / base:10.1f}")
        if p95 >= TARGET_MS:
            missed.append(path)
    print(f"target: every page p95 < {TARGET_MS:.0f} ms — {'met' if not missed else 'MISSED: ' + ', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
