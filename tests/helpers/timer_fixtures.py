"""Fixtures of the timer, sunset, schedule and CLI tests: catalogued apps, a recording provider, process env."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.timers import FakeProvider, make_app


@pytest.fixture
def timer_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Archive and log directories under tmp_path, set in this process; returned for subprocesses."""
    from orchestrator.config import get_settings

    env = {
        "ARCHIVE_URL": str(tmp_path / "archive"),
        "LOG_SOURCE_DIR": str(tmp_path / "app-logs"),
        "LOG_JSON": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return env


@pytest.fixture
def app_factory(db_url: str) -> Any:
    """make(**fields) → a committed MicroApp (with its owner as a Person) in the test database."""

    def _make(**fields: Any) -> Any:
        return make_app(**fields)

    return _make


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    """A credential provider answering revocations from a script."""
    yield FakeProvider()


@pytest.fixture(scope="session")
def private_redis(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of these tests' own when redis-server is installed, else this session's shared database.

    The process tests hold queues and a leader lock for many seconds; a private server keeps a
    concurrent test session that flushes the same database number from wiping them midway.
    """
    import shutil
    import subprocess

    import redis

    from bench.harness import free_port, wait_until

    server = shutil.which("redis-server")
    if server is None:
        yield redis_url
        return
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [server, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"

    def _up() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    wait_until(_up, timeout=10, what="private redis-server")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def redis_client(private_redis: str) -> Iterator[Any]:
    """A client on the tests' Redis, flushed first (stale queues from earlier tests)."""
    import redis

    client = redis.Redis.from_url(private_redis)
    client.flushdb()
    yield client
    client.close()


def soon(seconds: float) -> Any:
    """An aware UTC time `seconds` from now."""
    from orchestrator.clock import utcnow

    return utcnow() + timedelta(seconds=seconds)
