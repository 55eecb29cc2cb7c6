"""`orchestrator token list` and `token revoke`: what an operator sees, what the API then refuses."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from orchestrator.cli import build
from tests.events.helpers import audit_actions
from tests.factories import auth


def cli(*args: str) -> Result:
    """Invoke the real CLI in-process."""
    return CliRunner().invoke(build(), list(args))


def test_list_and_revoke_api_tokens(client: TestClient, make_token: Callable[..., str]) -> None:
    """A token listed by id is revoked by id, refused by the API at once, and audited once."""
    bot = make_token("maker", "maker@example.com", name="ci-bot")
    make_token("admin", "it@example.com", name="it")
    assert client.get("/api/v1/apps", headers=auth(bot)).status_code == 200

    listed = cli("token", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["role"], r["person_email"]) for r in rows] == [
        ("ci-bot", "maker", "maker@example.com"),
        ("it", "admin", "it@example.com"),
    ]
    assert not any(bot in json.dumps(r) for r in rows) and all(r["revoked_at"] is None for r in rows)
    table = cli("token", "list")
    assert table.exit_code == 0 and "ci-bot" in table.stdout and "Revoked" in table.stdout

    bot_id = rows[0]["id"]
    revoked = cli("token", "revoke", str(bot_id), "--reason", "laptop stolen")
    assert revoked.exit_code == 0, revoked.output
    assert f"token {bot_id} (ci-bot) revoked" in revoked.stdout
    assert client.get("/api/v1/apps", headers=auth(bot)).status_code == 401
    assert cli("token", "revoke", str(bot_id)).exit_code == 0  # again: nothing changes

    [entry] = [e for e in audit_actions() if e.action == "token.revoked"]
    assert entry.reason == "laptop stolen" and entry.data["token_id"] == bot_id
    assert [r["name"] for r in json.loads(cli("token", "list", "--json").stdout)] == ["it"]
    everything = json.loads(cli("token", "list", "--all", "--json").stdout)
    assert [r["revoked_at"] is not None for r in everything] == [True, False]


def test_revoking_an_unknown_token_says_so(client: TestClient) -> None:
    """An id that names no token exits 2 with a message, not a traceback."""
    result = cli("token", "revoke", "424242")
    assert result.exit_code == 2
    assert "no API token with id 424242" in result.stderr
