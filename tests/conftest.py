"""Shared fixtures: real SQLite and PostgreSQL databases, real Redis, the HTTP app, API tokens.

PostgreSQL: each test session creates its own database on PG_ADMIN_URL (default
postgresql+psycopg://postgres@127.0.0.1:5432/test) and drops it afterwards, so parallel runs never
collide. Without a reachable server the PostgreSQL tests are skipped with a message — except under
CI=true, where they fail. Redis: REDIS_TEST_URL or redis://127.0.0.1:6379, on a database number
picked per session; tests never FLUSHALL.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

REPO_ROOT = Path(__file__).resolve().parents[1]
# Fixtures more than one domain's tests use (none is autouse, so registering them for all costs nothing).
pytest_plugins = ["tests.helpers.slack_fixtures", "tests.helpers.timer_fixtures"]
# Recorded third-party payloads and corpora; tests/data/SOURCES.md says where each file comes from.
FIXTURES = REPO_ROOT / "tests" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_ADMIN_URL = os.environ.get("PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_BASE_URL = os.environ.get("REDIS_TEST_URL", "redis://127.0.0.1:6379")


def _unavailable(what: str, why: str) -> None:
    message = f"{what} is not reachable ({why})"
    if IN_CI:
        pytest.fail(f"{message}; CI must reach it", pytrace=False)
    pytest.skip(f"{message}; start it to run these tests")


@pytest.fixture(autouse=True, scope="session")
def _wiring() -> None:
    """Wire this process as the entry points do: event handlers and the outbox publisher."""
    from orchestrator import wiring

    wiring.install()


@pytest.fixture(autouse=True, scope="session")
def _local_repositories(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests review git repositories they make under the session's temp dir: allow exactly that root.

    Set in the environment (not only in a Settings object) so the workers and APIs tests start inherit it.
    """
    from orchestrator.config import get_settings

    os.environ.setdefault("REVIEW_LOCAL_ROOT", str(tmp_path_factory.getbasetemp()))
    get_settings.cache_clear()


@pytest.fixture(autouse=True, scope="module")
def _no_leftover_processes() -> Iterator[None]:
    """Kill any subprocess (worker, API, scheduler) a test module started and did not stop."""
    yield
    from bench.harness import reap_all

    reap_all()


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated; dropped at the end."""
    name = f"orch_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        _unavailable("PostgreSQL", str(exc).splitlines()[0])
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    from orchestrator.db import migrate

    migrate(url)
    yield url
    from orchestrator.db import reset_engines

    reset_engines()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    from orchestrator.db import get_engine
    from orchestrator.tables import metadata

    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


# ---------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    from orchestrator.db import migrate, reset_engines

    migrate(f"sqlite:///{path}")
    reset_engines()
    # Copies take the main file only: fold the write-ahead log into it and leave WAL mode, so a copy
    # never misses what a still-open connection had not checkpointed yet.
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()
    return path


# ---------------------------------------------------------------- settings / database


def _configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from orchestrator.catalog import policy
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    policy._cached.clear()
    reset_engines()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A migrated, empty database — once on SQLite and once on PostgreSQL — set as DATABASE_URL."""
    if request.param == "sqlite":
        path = tmp_path / "orchestrator.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_server_url")
        _truncate_all(url)
    # DATA_DIR keeps archives and the generated credential key of a test out of the working directory.
    _configure(
        monkeypatch,
        DATABASE_URL=url,
        BROKER_URL=os.environ.get("TEST_BROKER_URL", "memory://"),
        DATA_DIR=str(tmp_path / "var"),
    )
    yield url
    _quiesce()


def _quiesce() -> None:
    """Let this test's background writes finish before its settings are undone, then drop its engines."""
    from orchestrator.credentials.usage import wait_idle
    from orchestrator.db import reset_engines

    wait_idle()
    reset_engines()


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_template: Path) -> Iterator[str]:
    """A migrated, empty SQLite database set as DATABASE_URL (for tests that need only one)."""
    path = tmp_path / "orchestrator.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    _configure(monkeypatch, DATABASE_URL=url, BROKER_URL="memory://", DATA_DIR=str(tmp_path / "var"))
    yield url
    from orchestrator.db import reset_engines

    reset_engines()


@pytest.fixture
def pg_url(pg_server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session's PostgreSQL database, emptied, set as DATABASE_URL."""
    _truncate_all(pg_server_url)
    _configure(monkeypatch, DATABASE_URL=pg_server_url, BROKER_URL="memory://")
    yield pg_server_url


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL on a database number of this session's own (never flushed wholesale)."""
    import redis

    # Under pytest-xdist each worker takes a database of its own (gw0 → 2, gw1 → 3, …).
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    default = 2 + int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else random.randint(1, 15)
    db = int(os.environ.get("REDIS_TEST_DB", default))
    url = f"{REDIS_BASE_URL}/{db}"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        _unavailable("Redis", str(exc))
    return url


# ---------------------------------------------------------------- HTTP


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    """A TestClient on the real app over the parametrised database."""
    from fastapi.testclient import TestClient

    from orchestrator.http.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def make_token(db_url: str) -> Callable[..., str]:
    """Create an API token: make_token(role, email) → the bearer token string."""
    from orchestrator.auth.models import Role
    from orchestrator.auth.service import create_token
    from orchestrator.db import session_scope

    def _make(role: str = "admin", email: str | None = "admin@example.com", name: str | None = None) -> str:
        with session_scope() as session:
            return create_token(
                session, name=name or f"{role}-{email}", role=Role(role), person_email=email, actor="test"
            )

    return _make


# ---------------------------------------------------------------- RabbitMQ

RABBITMQ_BASE_URL = os.environ.get("RABBITMQ_TEST_URL", "amqp://guest:guest@127.0.0.1:5672")


def _rabbitmq_vhost() -> Iterator[str]:
    """An AMQP URL on a new virtual host (made with rabbitmqctl, deleted after); skips when there is no RabbitMQ."""
    import socket
    import subprocess
    from urllib.parse import urlsplit

    parts = urlsplit(RABBITMQ_BASE_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5672
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        _unavailable("RabbitMQ", f"nothing answers on {host}:{port}: {exc}")
    given = os.environ.get("RABBITMQ_TEST_VHOST")
    if given:
        yield f"{RABBITMQ_BASE_URL}/{given}"
        return
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        _unavailable("RabbitMQ", "rabbitmqctl is not installed to make a test vhost; set RABBITMQ_TEST_VHOST")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    vhost = f"orch-test-{worker}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def ctl_run(*args: str) -> None:
        done = subprocess.run([str(ctl), *args], capture_output=True, text=True, timeout=120)
        if done.returncode:
            _unavailable("RabbitMQ", f"rabbitmqctl {args[0]} failed: {(done.stderr or done.stdout).strip()[:300]}")

    ctl_run("add_vhost", vhost)
    ctl_run("set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*")
    yield f"{RABBITMQ_BASE_URL}/{vhost}"
    subprocess.run([str(ctl), "delete_vhost", vhost], capture_output=True, timeout=120)


@pytest.fixture(scope="session")
def rabbitmq_vhost_url() -> Iterator[str]:
    """An AMQP URL on a virtual host of this session's own (made with rabbitmqctl, deleted at the end).

    RABBITMQ_TEST_VHOST names an existing vhost to use instead (where rabbitmqctl cannot run).
    Without a RabbitMQ answering, the tests that need it are skipped — and fail under CI=true.
    """
    yield from _rabbitmq_vhost()


@pytest.fixture
def amqp_url(rabbitmq_vhost_url: str) -> Iterator[str]:
    """The session's RabbitMQ vhost with our queues emptied before and after the test (as FLUSHDB for Redis).

    Emptied, not deleted: this process's publishers remember the queues they declared, and would
    send into the void after a delete. Queues keep the arguments of their first declaration, so a
    test that needs others (a lower delivery limit) takes `fresh_amqp_url`.
    """
    _purge_queues(rabbitmq_vhost_url)
    yield rabbitmq_vhost_url
    _purge_queues(rabbitmq_vhost_url)


@pytest.fixture
def fresh_amqp_url() -> Iterator[str]:
    """An AMQP URL on a virtual host of this test's own (a few seconds to make)."""
    yield from _rabbitmq_vhost()


def _purge_queues(url: str) -> None:
    from typing import Any

    from kombu import Connection

    from orchestrator.broker_config import DEAD_LETTER_QUEUE
    from orchestrator.tasks import QUEUES

    # The task queues, the dead letters and Celery's native delayed-delivery levels (celery_delayed_0…27).
    names = [*QUEUES, DEAD_LETTER_QUEUE, *(f"celery_delayed_{level}" for level in range(28))]
    with Connection(url, connect_timeout=5) as connection:
        for name in names:
            channel: Any = connection.channel()  # a missing queue closes the channel it was asked on
            try:
                channel.queue_purge(name)
            except connection.channel_errors:
                pass
