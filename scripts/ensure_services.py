"""Make sure the services the tests use are there: start redis-server if nothing answers on 6379.

PostgreSQL and RabbitMQ are only reported on: the tests skip their cases with a message when they
are down (and fail under CI=true, where they must be reachable). The console's browser tests drive the system Chromium
(/usr/bin/chromium): under CI=true, as root with apt-get available, it is installed when missing;
elsewhere its absence is reported (those tests skip locally and fail under CI).
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


RABBITMQ_HOST, RABBITMQ_PORT = "127.0.0.1", int(os.environ.get("RABBITMQ_PORT", "5672"))


def report_rabbitmq() -> None:
    """Say whether RabbitMQ answers; the broker tests run on it too, and skip (fail under CI) without it."""
    if answers(RABBITMQ_HOST, RABBITMQ_PORT):
        print(f"rabbitmq: answering on {RABBITMQ_HOST}:{RABBITMQ_PORT}")
    else:
        print(
            f"rabbitmq: nothing answers on {RABBITMQ_HOST}:{RABBITMQ_PORT}; the RabbitMQ cases of the broker tests "
            "will be skipped (fail under CI)"
        )


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def ensure_chromium() -> None:
    """Install Debian's chromium with apt-get under CI (as root) when it is missing; report otherwise."""
    if os.path.exists(CHROMIUM):
        print(f"chromium: {CHROMIUM}")
        return
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    apt = shutil.which("apt-get")
    if not in_ci or apt is None or os.geteuid() != 0:
        why = "not under CI" if not in_ci else ("apt-get not found" if apt is None else "not root")
        print(
            f"chromium: {CHROMIUM} missing and not installed ({why}); the browser tests will be skipped "
            "(fail under CI). Install it with: apt-get install -y chromium",
            file=sys.stderr,
        )
        return
    print("chromium: installing with apt-get (a few minutes)...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-q"], [apt, "install", "-y", "-q", "--no-install-recommends", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1200)
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"chromium: {' '.join(command[1:])} failed: {exc}", file=sys.stderr)
            return
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            print(f"chromium: {' '.join(command[1:])} failed ({done.returncode}): {' / '.join(tail)}", file=sys.stderr)
            return
    print(f"chromium: installed at {CHROMIUM}" if os.path.exists(CHROMIUM) else "chromium: installed but not found")


if __name__ == "__main__":
    ensure_redis()
    report_postgres()
    report_rabbitmq()
    ensure_chromium()
