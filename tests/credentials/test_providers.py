"""External providers against local HTTP servers that answer each class of response; the registry's checks."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from tests.credentials.servers import Answer, ScriptedServer

if TYPE_CHECKING:
    from orchestrator.catalog.models import MicroApp
    from orchestrator.integrations.credentials.http import HttpProvider
    from orchestrator.integrations.credentials.slack import SlackProvider

HMAC_KEY = "revocation-hook-key-for-tests"


def _http_provider(server: ScriptedServer, **options: Any) -> HttpProvider:
    from orchestrator.integrations.credentials.http import HttpProvider

    options = {"timeout": 0.5, "max_attempts": 3, "max_wait": 0.05, **options}
    return HttpProvider("hr", url=server.url + "/revoke", secret=HMAC_KEY.encode(), **options)


class TestHttpProvider:
    def test_2xx_is_revoked_and_the_body_is_signed(self) -> None:
        """A 2xx answer means revoked; the JSON body names the credential and carries a valid HMAC-SHA256."""
        with ScriptedServer([Answer(204)]) as server:
            result = _http_provider(server).revoke(external_ref="hr-token-42")
        assert result.revoked and not result.already_gone
        [seen] = server.seen
        body = json.loads(seen.body)
        assert body["credential"] == "hr-token-42" and body["provider"] == "hr" and body["action"] == "revoke"
        expected = hmac.new(HMAC_KEY.encode(), seen.headers["x-orchestrator-timestamp"].encode() + b"." + seen.body,
                            hashlib.sha256).hexdigest()  # fmt: skip
        assert seen.headers["x-orchestrator-signature"] == "sha256=" + expected

    def test_404_is_already_gone(self) -> None:
        """A 404 means the system no longer knows the credential: success with a note, no retry."""
        with ScriptedServer([Answer(404)]) as server:
            result = _http_provider(server).revoke(external_ref="x")
        assert result.revoked and result.already_gone and "404" in result.note and len(server.seen) == 1

    def test_other_4xx_is_permanent(self) -> None:
        """A 403 is a permanent IntegrationError after a single attempt."""
        from orchestrator.errors import IntegrationError, TransientIntegrationError

        with ScriptedServer([Answer(403, {"error": "forbidden"})]) as server:
            with pytest.raises(IntegrationError, match="403") as raised:
                _http_provider(server).revoke(external_ref="x")
        assert not isinstance(raised.value, TransientIntegrationError) and len(server.seen) == 1

    def test_5xx_then_2xx_is_retried_to_success(self) -> None:
        """Server errors are retried with back-off until the system confirms."""
        with ScriptedServer([Answer(500), Answer(503), Answer(200)]) as server:
            result = _http_provider(server).revoke(external_ref="x")
        assert result.revoked and len(server.seen) == 3

    def test_persistent_5xx_is_transient(self) -> None:
        """When every attempt fails with 5xx the error is transient (the sunset job retries later)."""
        from orchestrator.errors import TransientIntegrationError

        with ScriptedServer([Answer(502)]) as server:
            with pytest.raises(TransientIntegrationError, match="3 attempts"):
                _http_provider(server).revoke(external_ref="x")
        assert len(server.seen) == 3

    def test_timeout_is_retried_then_transient(self) -> None:
        """A system that does not answer in time is retried, then reported as transient."""
        from orchestrator.errors import TransientIntegrationError

        with ScriptedServer([Answer(200, delay=1.0)]) as server:
            with pytest.raises(TransientIntegrationError, match="Timeout"):
                _http_provider(server, timeout=0.2, max_attempts=2).revoke(external_ref="x")
        assert len(server.seen) == 2


def _slack(server: ScriptedServer) -> SlackProvider:
    from orchestrator.integrations.credentials.slack import SlackProvider

    return SlackProvider(api_url=server.url + "/api/", timeout=2)


class TestSlackProvider:
    def test_auth_revoke_with_the_token_itself(self) -> None:
        """auth.revoke is called with the credential's own token and `revoked: true` means done."""
        token = "xoxb-" + "1" * 12
        with ScriptedServer([Answer(200, {"ok": True, "revoked": True})]) as server:
            result = _slack(server).revoke(external_ref="T1/B1", secret=token)
        assert result.revoked and not result.already_gone
        [seen] = server.seen
        assert seen.path.startswith("/api/auth.revoke") and seen.headers["authorization"] == f"Bearer {token}"

    def test_dead_token_is_already_gone(self) -> None:
        """A token Slack no longer accepts (invalid_auth, token_revoked) counts as revoked, with a note."""
        with ScriptedServer([Answer(200, {"ok": False, "error": "token_revoked"})]) as server:
            result = _slack(server).revoke(external_ref="T1/B1", secret="xoxb-dead")
        assert result.revoked and result.already_gone and "token_revoked" in result.note

    def test_server_error_is_transient_and_refusal_is_permanent(self) -> None:
        """A 5xx or rate limit is transient; another Slack error is permanent; no stored token is permanent."""
        from orchestrator.errors import IntegrationError, TransientIntegrationError

        with ScriptedServer([Answer(500, {"ok": False}), Answer(200, {"ok": False, "error": "missing_scope"})]) as s:
            with pytest.raises(TransientIntegrationError):
                _slack(s).revoke(external_ref="r", secret="xoxb-1")
            with pytest.raises(IntegrationError, match="missing_scope") as raised:
                _slack(s).revoke(external_ref="r", secret="xoxb-1")
            assert not isinstance(raised.value, TransientIntegrationError)
            with pytest.raises(IntegrationError, match="no stored token"):
                _slack(s).revoke(external_ref="r")

    def test_registered_slack_token_is_revoked_from_its_sealed_copy(
        self, make_app: Callable[..., MicroApp], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A Slack token registered in the ledger is sealed apart, used at revocation, then shredded."""
        from orchestrator.credentials import service
        from orchestrator.credentials.models import Credential, CredentialSecret
        from orchestrator.credentials.providers import get_providers
        from orchestrator.db import session_scope
        from tests.credentials.conftest import reset_credential_caches

        token = "xoxb-" + "9" * 12
        make_app()
        with ScriptedServer([Answer(200, {"ok": True, "revoked": True})]) as server:
            monkeypatch.setenv("SLACK_API_URL", server.url + "/api/")
            reset_credential_caches()
            with session_scope() as session:
                row = service.register_credential(session, "expense-helper", provider_name="slack",
                                                  external_ref="T1/B1", actor="it", secret=token)  # fmt: skip
            with session_scope(write=False) as session:
                assert token not in json.dumps(session.get_one(Credential, row.id).model_dump(mode="json"))
                assert token not in session.get_one(CredentialSecret, row.id).sealed
            with session_scope() as session:
                assert row.id is not None
                service.revoke_credential(session, row.id, actor="sunset", reason="retired", providers=get_providers())
            with session_scope(write=False) as session:
                assert session.get(CredentialSecret, row.id) is None
        assert server.seen[0].headers["authorization"] == f"Bearer {token}"


class TestRegistry:
    def test_defaults_and_configured_providers(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The built-in providers and Slack are always there; CREDENTIAL_PROVIDERS adds more by name."""
        from orchestrator.config import get_settings
        from orchestrator.credentials.providers import validate_providers

        monkeypatch.setenv("HR_KEY", HMAC_KEY)
        monkeypatch.setenv("CREDENTIAL_PROVIDERS", json.dumps(
            {"hr": {"type": "http", "url": "https://hr.example/revoke", "secret_env": "HR_KEY"}}))  # fmt: skip
        get_settings.cache_clear()
        assert validate_providers() == ["builtin", "builtin-service", "hr", "slack"]

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            ({"hr": {"type": "ldap"}}, "CREDENTIAL_PROVIDERS.hr.type"),
            ({"hr": {"type": "http", "secret_env": "HR_KEY"}}, "CREDENTIAL_PROVIDERS.hr.url"),
            ({"hr": {"type": "http", "url": "not a url", "secret_env": "HR_KEY"}}, "CREDENTIAL_PROVIDERS.hr.url"),
            ({"hr": {"type": "http", "url": "https://h.example", "secret_env": "UNSET_VAR"}}, "UNSET_VAR"),
            ({"hr": {"type": "http", "url": "https://h.example", "secret_env": "HR_KEY", "tiemout": 1}}, "tiemout"),
            ({"builtin": {"type": "slack"}}, "reserved"),
        ],
    )
    def test_misconfiguration_fails_with_a_clear_message(
        self, monkeypatch: pytest.MonkeyPatch, config: dict[str, Any], message: str
    ) -> None:
        """Each kind of bad provider configuration is a ConfigError naming the provider and the option."""
        from orchestrator.config import get_settings
        from orchestrator.credentials.providers import validate_providers
        from orchestrator.errors import ConfigError

        monkeypatch.setenv("HR_KEY", HMAC_KEY)
        monkeypatch.delenv("UNSET_VAR", raising=False)
        monkeypatch.setenv("CREDENTIAL_PROVIDERS", json.dumps(config))
        get_settings.cache_clear()
        with pytest.raises(ConfigError, match=message):
            validate_providers()

    def test_api_refuses_to_start_with_a_bad_provider(self, sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """The API's start-up runs the provider check, so a bad configuration stops it."""
        from fastapi.testclient import TestClient

        from orchestrator.config import get_settings
        from orchestrator.errors import ConfigError
        from orchestrator.http.app import create_app

        monkeypatch.setenv("CREDENTIAL_PROVIDERS", json.dumps({"hr": {"type": "ftp"}}))
        get_settings.cache_clear()
        with pytest.raises(ConfigError, match="hr.type"):
            with TestClient(create_app()):
                pass
