"""The scheduler's leader lock when its Redis goes away: it steps down in time, never keeps acting as leader.

Each test runs a throw-away redis-server on a free port and kills it (SIGKILL) mid-lead.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bench.harness import free_port, wait_until
from schedules.leader import RedisLeaderLock

TTL = 3.0


class RedisServer:
    """A redis-server process of this test's own, which the test may kill and start again on the same port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.binary, self.workdir, self.port = binary, workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start an empty server (no persistence) and wait until it answers."""
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*args, "--dir", str(self.workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_until(self._up, timeout=10, what="redis-server up")

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, as when the host or the network goes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _up(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running throw-away Redis, killed at the end whatever happened."""
    srv = RedisServer(tmp_path)
    srv.start()
    yield srv
    srv.kill()


def test_steps_down_before_the_lock_could_lapse(server: RedisServer) -> None:
    """With Redis gone, renew() keeps the lead only while the last good renewal still covers it, then says no."""
    lock = RedisLeaderLock(server.url, name="test:leader", ttl=TTL)
    assert lock.try_acquire()
    assert lock.renew()
    renewed_at = time.monotonic()
    server.kill()

    verdicts: list[tuple[float, bool]] = []
    while time.monotonic() - renewed_at < TTL + 2:
        verdicts.append((time.monotonic() - renewed_at, lock.renew()))
        if not verdicts[-1][1]:
            break
        time.sleep(0.2)

    stepped_down = [t for t, leads in verdicts if not leads]
    assert stepped_down, f"still leading {TTL + 2:.0f}s after Redis went away: {verdicts}"
    # Another replica could take over once the key expires, TTL after the last renewal; it must be gone by then.
    assert max(t for t, leads in verdicts if leads) < TTL - lock.renew_interval + 0.5
    assert stepped_down[0] < TTL
    # And with Redis still down it cannot lead again.
    assert not lock.try_acquire()


def test_steps_down_when_another_replica_took_the_lock(server: RedisServer) -> None:
    """Redis restarts empty, another replica takes the lock: the old leader's next renewal steps it down."""
    old = RedisLeaderLock(server.url, name="test:leader", ttl=TTL)
    assert old.try_acquire()
    server.kill()
    server.start()
    new = RedisLeaderLock(server.url, name="test:leader", ttl=TTL)
    assert new.try_acquire()
    assert not old.renew()
    assert new.renew()
    assert redis.Redis.from_url(server.url).get("test:leader:holder") == new.identity.encode()


def test_a_held_lock_is_not_taken(server: RedisServer) -> None:
    """While a leader renews, a second replica cannot take the lock; after a clean release it can."""
    first = RedisLeaderLock(server.url, name="test:leader", ttl=TTL)
    second = RedisLeaderLock(server.url, name="test:leader", ttl=TTL)
    assert first.try_acquire()
    assert not second.try_acquire()
    assert first.renew()
    first.release()
    assert second.try_acquire()
