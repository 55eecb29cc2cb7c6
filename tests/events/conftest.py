"""Fixtures of the pipeline tests: webhook secrets set for the in-process app, a fake GitHub API."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.events.fake_github import FakeGitHub


@pytest.fixture
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """A GitHub webhook secret made for this test, set as GITHUB_WEBHOOK_SECRET."""
    from orchestrator.config import get_settings

    secret = secrets.token_hex(16)
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", secret)
    get_settings.cache_clear()
    return secret


@pytest.fixture
def fake_github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    """A local HTTP server speaking the GitHub REST calls we use, set as GITHUB_API_URL/GITHUB_TOKEN."""
    from orchestrator.config import get_settings

    server = FakeGitHub(token=secrets.token_hex(12))
    server.start()
    monkeypatch.setenv("GITHUB_API_URL", server.url)
    monkeypatch.setenv("GITHUB_TOKEN", server.token)
    get_settings.cache_clear()
    yield server
    server.stop()
    get_settings.cache_clear()


@pytest.fixture
def sqlite_client(sqlite_url: str) -> Iterator[Any]:
    """A TestClient on the real app over SQLite only (for checks the database does not change)."""
    from fastapi.testclient import TestClient

    from orchestrator.http.app import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client
