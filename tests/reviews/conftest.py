"""Fixtures of the review flow tests: one real stack per database (API in-process, Celery worker on Redis,
and the scheduler, whose jobs re-publish lost events and reviews).

`stack` is module-scoped so the worker starts once per database; every test registers its own apps
(distinct ids), so they do not see each other's state.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.harness import Proc, start_scheduler, start_worker
from tests.reviews.helpers import FakeGitHubTarballs


@dataclass
class Stack:
    """A migrated database, the worker using it, the fake GitHub, and an API client with a maker token."""

    url: str
    worker: Proc
    github: FakeGitHubTarballs
    api: Any
    maker_token: str


def _settings_reset() -> None:
    from orchestrator.catalog import policy
    from orchestrator.config import get_settings
    from orchestrator.db import reset_engines

    get_settings.cache_clear()
    policy._cached.clear()
    reset_engines()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, redis_url: str, sqlite_template: Path
) -> Iterator[Stack]:
    """The real parts wired together over SQLite or PostgreSQL; torn down after the module."""
    import redis
    from fastapi.testclient import TestClient

    from tests.conftest import _truncate_all

    tmp = tmp_path_factory.mktemp(f"reviews-{request.param}")
    if request.param == "sqlite":
        shutil.copy(sqlite_template, tmp / "orchestrator.db")
        url = f"sqlite:///{tmp / 'orchestrator.db'}"
    else:
        url = request.getfixturevalue("pg_server_url")
        _truncate_all(url)
    broker = redis.Redis.from_url(redis_url)
    broker.flushdb()
    github = FakeGitHubTarballs(token=secrets.token_hex(12))
    github.start()
    env = {
        "DATABASE_URL": url,
        "BROKER_URL": redis_url,
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": github.token,
        "REVIEW_FETCH": "auto",
        "REVIEW_SWEEP_INTERVAL_SECONDS": "1",
        "REVIEW_REDRIVE_AFTER_SECONDS": "3",
        "RELAY_INTERVAL_SECONDS": "0.5",
        "RELAY_PENDING_AFTER_SECONDS": "1",
        "GITHUB_REDELIVERY_INTERVAL_SECONDS": "0",
        "REVIEW_WORK_DIR": str(tmp / "work"),
        # Approved apps' service secrets are sealed by the worker and claimed through the API: one key for both.
        "CREDENTIAL_KEY": secrets.token_urlsafe(32),
        "TOKEN_ISSUER": "http://orchestrator.test",
    }
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    _settings_reset()
    worker = start_worker(env=env, log_path=tmp / "worker.log", queues="ingest,reviews,notifications")
    scheduler = start_scheduler(env=env, log_path=tmp / "scheduler.log")
    try:
        from orchestrator.auth.models import Role
        from orchestrator.auth.service import create_token
        from orchestrator.db import session_scope
        from orchestrator.http.app import create_app

        with session_scope() as session:
            token = create_token(session, name="maker", role=Role.maker, person_email="maker@example.com", actor="test")
        with TestClient(create_app(), raise_server_exceptions=False) as api:
            yield Stack(url=url, worker=worker, github=github, api=api, maker_token=token)
    finally:
        scheduler.stop()
        worker.stop()
        github.stop()
        patch.undo()
        _settings_reset()
        broker.flushdb()
