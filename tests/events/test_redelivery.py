"""The GitHub redelivery job against a local server that speaks the hook deliveries API."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator.clock import utcnow
from orchestrator.errors import ConfigError
from orchestrator.events.redelivery import parse_hooks, redeliver_failed

if TYPE_CHECKING:
    from tests.events.fake_github import FakeGitHub

REPO_HOOK = "repos/acme/expense-helper/hooks/42"
ORG_HOOK = "orgs/acme/hooks/7"


def _delivery(id: int, guid: str, status_code: int, *, minutes_ago: float, redelivery: bool = False) -> dict[str, Any]:
    at = (utcnow() - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = "OK" if status_code < 300 else "Invalid HTTP Response: 503"
    return {
        "id": id, "guid": guid, "delivered_at": at, "redelivery": redelivery, "duration": 0.1, "status": status,
        "status_code": status_code, "event": "push", "action": None, "installation_id": None, "repository_id": 1,
    }  # fmt: skip


def _configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from orchestrator.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def test_failed_deliveries_are_redelivered_once(
    sqlite_url: str, fake_github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only GUIDs that never got a 2xx, are unknown here and have attempts left are redelivered (latest attempt)."""
    from orchestrator.db import session_scope
    from orchestrator.events.outbox import emit

    fake_github.deliveries[REPO_HOOK] = [
        _delivery(9, "g-retried-ok", 200, minutes_ago=1, redelivery=True),
        _delivery(8, "g-failed", 503, minutes_ago=2, redelivery=True),
        _delivery(7, "g-failed", 503, minutes_ago=3),
        _delivery(6, "g-stored", 502, minutes_ago=4),  # timed out at GitHub's end, but we committed it
        _delivery(5, "g-retried-ok", 500, minutes_ago=5),
        _delivery(4, "g-ok", 202, minutes_ago=6),
        *[_delivery(100 + i, "g-hopeless", 503, minutes_ago=7 + i) for i in range(5)],
        _delivery(3, "g-too-old", 503, minutes_ago=60 * 80),
    ]
    fake_github.deliveries[ORG_HOOK] = [_delivery(2, "g-org", 504, minutes_ago=1)]
    with session_scope() as session:
        emit(session, type="app.updated", source="github", dedup_key="github:g-stored")
    _configure(monkeypatch, GITHUB_HOOKS=f"{REPO_HOOK}, {ORG_HOOK}")
    from orchestrator.integrations.github import GitHubClient

    # Pages of 3 (100 in production) so that following the Link header is exercised.
    with GitHubClient(fake_github.url, fake_github.token, page_size=3) as client:
        report = redeliver_failed(client=client)
    assert sorted(fake_github.redelivered) == [(ORG_HOOK, 2), (REPO_HOOK, 8)]
    assert sorted(report.redelivered) == ["g-failed", "g-org"]
    assert any("cursor=" in path for _, path in fake_github.requests)


def test_job_is_skipped_without_hooks_or_token(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no GITHUB_HOOKS (or no GITHUB_TOKEN) the job does nothing."""
    _configure(monkeypatch, GITHUB_HOOKS="")
    assert redeliver_failed().skipped
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    _configure(monkeypatch, GITHUB_HOOKS=REPO_HOOK)
    assert redeliver_failed().skipped


def test_malformed_hook_is_a_config_error() -> None:
    """A GITHUB_HOOKS entry that is not a hook path is refused with its value named."""
    assert parse_hooks(f" {REPO_HOOK} ,{ORG_HOOK}/") == [REPO_HOOK, ORG_HOOK]
    with pytest.raises(ConfigError, match="acme/hooks"):
        parse_hooks("acme/hooks/1")
