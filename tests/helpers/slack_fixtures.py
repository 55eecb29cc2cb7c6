"""Slack fixtures (approvals, notifications, integrations, HTTP tests): the local Slack Web API and its settings."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from bench.fake_slack import FakeSlack
from bench.slack_requests import CHANNELS, SLACK_IDS


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    """A running local Slack with the policy's channels and our people."""
    # Built at run time so no token-shaped string lives in the repository.
    fake = FakeSlack(token="-".join(["xoxb", secrets.token_hex(6), secrets.token_hex(12)]))
    for name, channel_id in CHANNELS.items():
        fake.add_channel(name, channel_id)
    for email, user_id in SLACK_IDS.items():
        fake.add_user(email, user_id)
    fake.base_url = fake.start()  # type: ignore[attr-defined]
    yield fake
    fake.stop()


def configure_slack(monkeypatch: pytest.MonkeyPatch, fake: FakeSlack | None, **extra: str) -> str:
    """Point the settings at `fake` (or at no Slack at all); returns the signing secret."""
    from orchestrator.config import get_settings
    from orchestrator.integrations import slack as slack_integration

    secret = secrets.token_hex(16)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", secret)
    if fake is None:
        monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SLACK_BOT_TOKEN", fake.token)
        monkeypatch.setenv("SLACK_API_URL", fake.base_url)  # type: ignore[attr-defined]
    monkeypatch.setenv("SLACK_TIMEOUT_SECONDS", extra.pop("timeout", "2"))
    for key, value in extra.items():
        monkeypatch.setenv(key.upper(), value)
    get_settings.cache_clear()
    slack_integration._clients.clear()
    return secret


@pytest.fixture
def signing_secret(db_url: str, slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings on the parametrised database and the local Slack; the signing secret to sign with."""
    return configure_slack(monkeypatch, slack)
