"""The soak's short version (bench/soak.py): 20 s of webhooks through 2 APIs, 3 workers, 2 schedulers."""

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
    violations all 0 (PostgreSQL from the session's server; the soak makes and drops its own database)."""
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is needed for the soak's private Redis", pytrace=False)
        pytest.skip("redis-server is not installed: the soak needs one of its own to restart")
    # Shorter recovery windows than the defaults (45 s, 30 s), so that what a restart loses comes back within CI's
    # time; no Slack clicks: one whose handler is killed mid-run waits out a 5-minute lease before it is retried.
    env = {**os.environ, "RELAY_LEASE_STALE_SECONDS": "10", "NOTIFICATION_SWEEP_SECONDS": "5"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--seconds", "20", "--rate", "8", "--click-every", "0"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"soak"')]
    assert lines, f"no result:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    result = json.loads(lines[-1])["soak"]
    assert (result["lost"], result["doubled"], result["violations"]) == (0, 0, 0), result
    assert result["accepted"] == result["deliveries"] == 160 and done.returncode == 0
