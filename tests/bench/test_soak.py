"""The soak's short version (bench/soak.py): 15 s of webhooks, token exchanges, expiries and sunsets through 2 APIs,
3 workers and 2 schedulers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from bench.harness import REPO_ROOT
from tests.conftest import IN_CI

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_a_short_soak_loses_nothing_does_nothing_twice_and_breaks_no_invariant(pg_server_url: str) -> None:
    """An API, a worker, the leading scheduler and Redis killed and restarted under load: lost, doubled,
    violations all 0 for webhooks, token exchanges, expiries and sunsets (PostgreSQL from the session's server;
    the soak makes and drops its own database)."""
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is needed for the soak's private Redis", pytrace=False)
        pytest.skip("redis-server is not installed: the soak needs one of its own to restart")
    # Shorter recovery windows than the defaults (relay 45 s, sweep 30 s, leader lock 30 s, sunset lease 30 s and
    # resume 15 s), so that what a kill or the restart loses comes back within CI's time. No Slack clicks: one
    # whose task the Redis restart lost waits 30 s as `pending` before the sweep sends it again.
    env = {
        **os.environ, "RELAY_LEASE_STALE_SECONDS": "5", "NOTIFICATION_SWEEP_SECONDS": "5",
        "SCHEDULER_LOCK_TTL_SECONDS": "5", "SUNSET_LEASE_SECONDS": "6", "SUNSET_RESUME_SECONDS": "2",
    }  # fmt: skip
    args = ["--seconds", "15", "--rate", "8", "--click-every", "0", "--exchange-every", "4", "--expiries", "3",
            "--sunsets", "3"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"soak"')]
    assert lines, f"no result:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])["soak"]
    assert (result["lost"], result["doubled"], result["violations"]) == (0, 0, 0), result
    assert result["accepted"] == result["deliveries"] == 120 and done.returncode == 0
    assert (result["exchanges"], result["expiries"], result["sunsets"]) == (30, 3, 6), result
