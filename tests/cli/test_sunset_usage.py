"""The usage ping endpoint and the sunset/deadlines commands."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from orchestrator.catalog.lifecycle import Stage
from orchestrator.cli import build
from tests.factories import auth
from tests.helpers.timers import add_credential, audit_actions

runner = CliRunner()


def test_usage_ping_records_and_throttles(client: Any, make_token: Any, app_factory: Any) -> None:
    """A ping records the last use once per interval; others' apps are hidden; retired apps refuse."""
    app = app_factory(stage=Stage.production, expires_at=None)
    owner = make_token("maker", "maker@example.com")
    first = client.post(f"/api/v1/apps/{app.id}/usage", headers=auth(owner))
    second = client.post(f"/api/v1/apps/{app.id}/usage", headers=auth(owner))
    assert first.status_code == 202 and first.json()["recorded"] is True
    assert second.status_code == 202 and second.json()["recorded"] is False
    assert second.json()["last_used_at"] == first.json()["last_used_at"]
    stranger = make_token("maker", "someone@example.com")
    assert client.post(f"/api/v1/apps/{app.id}/usage", headers=auth(stranger)).status_code == 404
    assert client.post("/api/v1/apps/expense-helper/usage").status_code == 401
    gone = app_factory(id="old-tool", stage=Stage.retired, expires_at=None)
    refused = client.post(f"/api/v1/apps/{gone.id}/usage", headers=auth(owner))
    assert refused.status_code == 409 and refused.json()["error"] == "conflict"


def test_sunset_dry_run_changes_nothing(sqlite_url: str, app_factory: Any, timer_settings: dict[str, str]) -> None:
    """`sunset APP --dry-run` lists the steps, credentials and archive contents and writes nothing."""
    app = app_factory(stage=Stage.production, expires_at=None)
    add_credential(app.id, provider="fake")
    before = audit_actions(app.id)
    result = runner.invoke(build(), ["sunset", app.id, "--dry-run"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["stage_change"] == "production → sunsetting → retired"
    assert [s["state"] for s in plan["steps"]] == ["to do"] * 4
    assert len(plan["credentials_to_revoke"]) == 1 and plan["notify"][0] == "maker@example.com"
    assert audit_actions(app.id) == before


def test_sunset_command_errors_are_one_line(sqlite_url: str, app_factory: Any, timer_settings: dict[str, str]) -> None:
    """An unknown app or an app that cannot be retired is an `error:` line and a non-zero exit."""
    missing = runner.invoke(build(), ["sunset", "nope"])
    assert missing.exit_code == 1 and "error: no app with id 'nope'" in missing.stderr
    app_factory(stage=Stage.retired, expires_at=None)
    retired = runner.invoke(build(), ["sunset", "expense-helper"])
    assert retired.exit_code == 1 and "error:" in retired.stderr
    assert runner.invoke(build(), ["archive", "verify", "expense-helper"]).exit_code == 1
