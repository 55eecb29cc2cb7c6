"""Make sure the services the tests use are there: start redis-server if nothing answers on 6379.

PostgreSQL is only reported on: the tests skip its cases with a message when it is down (and fail
under CI=true, where it must be reachable).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("REDIS_PORT", "6379"))
PG_HOST, PG_PORT = "127.0.0.1", int(os.environ.get("PG_PORT", "5432"))


def answers(host: str, port: int) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def ensure_redis() -> None:
    """Start a throw-away redis-server when none answers and one is installed."""
    if answers(REDIS_HOST, REDIS_PORT):
        print(f"redis: answering on {REDIS_HOST}:{REDIS_PORT}")
        return
    server = shutil.which("redis-server")
    if server is None:
        print("redis: nothing answers and redis-server is not installed; Redis tests will be skipped", file=sys.stderr)
        return
    subprocess.run(
        [
            server,
            "--daemonize",
            "yes",
            "--bind",
            REDIS_HOST,
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/tmp",
            "--logfile",
            "/tmp/orchestrator-test-redis.log",
        ],
        check=True,
    )
    for _ in range(50):
        if answers(REDIS_HOST, REDIS_PORT):
            print(f"redis: started redis-server on {REDIS_HOST}:{REDIS_PORT}")
            return
        time.sleep(0.1)
    print("redis: started redis-server but it does not answer", file=sys.stderr)


def report_postgres() -> None:
    """Say whether PostgreSQL answers; its tests decide what to do about it."""
    if answers(PG_HOST, PG_PORT):
        print(f"postgres: answering on {PG_HOST}:{PG_PORT}")
    else:
        print(f"postgres: nothing answers on {PG_HOST}:{PG_PORT}; PostgreSQL tests will be skipped (fail under CI)")


if __name__ == "__main__":
    ensure_redis()
    report_postgres()
