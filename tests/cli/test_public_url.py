"""One setting for every link: with API_PORT=18000 the hints, links, token issuer and Slack buttons name 18000."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator.config import Settings


def _reconfigure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    from orchestrator.config import get_settings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()


def test_public_url_defaults_from_the_api_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, PUBLIC_URL is http://API_HOST:API_PORT (a wildcard host shows as loopback); set, it wins."""
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    assert Settings(api_port=18000).public_url == "http://127.0.0.1:18000"
    assert Settings(api_host="0.0.0.0", api_port=18001).public_url == "http://127.0.0.1:18001"
    assert Settings(api_host="::1", api_port=18002).public_url == "http://[::1]:18002"
    assert Settings(api_port=18000, public_url="https://orch.example.com").public_url == "https://orch.example.com"


def test_every_link_follows_api_port(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo's hint, notification links, the token issuer and the Slack buttons all say port 18000."""
    from orchestrator.approvals import messages
    from orchestrator.approvals.models import ApprovalRequest
    from orchestrator.catalog.models import MicroApp
    from orchestrator.cli import build
    from orchestrator.credentials.tokens.builtin import token_issuer
    from orchestrator.db import session_scope
    from orchestrator.notifications.delivery import app_url

    monkeypatch.delenv("PUBLIC_URL", raising=False)
    _reconfigure(monkeypatch, API_PORT="18000")
    result = CliRunner().invoke(build(), ["demo"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:18000/api/v1/apps" in result.output and ":8000" not in result.output
    assert token_issuer() == "http://127.0.0.1:18000"
    assert app_url("expense-helper") == "http://127.0.0.1:18000/console/apps/expense-helper"
    with session_scope() as session:
        app = session.get(MicroApp, "customer-churn-dashboard")
        assert app is not None
        request = ApprovalRequest(id=1, app_id=app.id, requested_by=app.owner_email)
        rendered = messages.approval_message(approval=request, app=app, app_url=app_url(app.id))
    blocks = json.dumps(rendered.blocks, default=str)
    assert "127.0.0.1:18000" in blocks and ":8000/" not in blocks
