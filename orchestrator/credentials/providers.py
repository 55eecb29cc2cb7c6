"""Credential providers by name, built from settings; a bad configuration fails at start-up.

Always present: `builtin` (the token service), `builtin-service` (apps' service identities) and
`slack` (SLACK_API_URL). More come from CREDENTIAL_PROVIDERS, a JSON object of name → options:

    {"hr": {"type": "http", "url": "https://hr.example/revoke", "secret_env": "HR_REVOKE_KEY"},
     "slack-eu": {"type": "slack", "api_url": "https://slack.example/api/"}}

`validate_providers()` builds them all and raises ConfigError naming the provider, the option and
the reason; call it when a process starts (the OAuth router's lifespan does, and `create_app` may).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from orchestrator.config import Settings, get_settings
from orchestrator.credentials.tokens.builtin import (
    BUILTIN,
    SERVICE,
    BuiltinTokenProvider,
    ServiceCredentialProvider,
)
from orchestrator.errors import ConfigError, IntegrationError
from orchestrator.integrations.credentials.base import CredentialProvider
from orchestrator.integrations.credentials.http import HttpProvider
from orchestrator.integrations.credentials.slack import SlackProvider

Providers = dict[str, CredentialProvider]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpOptions(_Options):
    """Options of a generic revocation webhook."""

    type: Literal["http"]
    url: HttpUrl
    secret_env: str = Field(min_length=1, description="environment variable holding the HMAC key")
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=4, ge=1, le=10)
    max_wait_seconds: float = Field(default=5.0, gt=0, le=60)


class SlackOptions(_Options):
    """Options of a Slack workspace (or a Slack-compatible API)."""

    type: Literal["slack"]
    api_url: HttpUrl | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)


def _build_one(name: str, raw: Any, settings: Settings) -> CredentialProvider:
    where = f"CREDENTIAL_PROVIDERS.{name}"
    if name in (BUILTIN, SERVICE):
        raise ConfigError(f"{where}: the name {name!r} is reserved for the built-in provider")
    if not isinstance(raw, dict) or raw.get("type") not in ("http", "slack"):
        kind = raw.get("type") if isinstance(raw, dict) else raw
        raise ConfigError(f"{where}.type: must be 'http' or 'slack', got {kind!r}")
    try:
        if raw["type"] == "http":
            http = HttpOptions.model_validate(raw)
            secret = os.environ.get(http.secret_env, "")
            if len(secret) < 16:
                raise ConfigError(
                    f"{where}.secret_env: environment variable {http.secret_env} must hold the HMAC key "
                    "(at least 16 characters)"
                )
            return HttpProvider(
                name,
                url=str(http.url),
                secret=secret.encode("utf-8"),
                timeout=http.timeout_seconds,
                max_attempts=http.max_attempts,
                max_wait=http.max_wait_seconds,
            )
        slack = SlackOptions.model_validate(raw)
        return SlackProvider(name, api_url=str(slack.api_url or settings.slack_api_url), timeout=slack.timeout_seconds)
    except ValidationError as exc:
        reasons = "; ".join(f"{where}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(reasons) from None


def build_providers(settings: Settings | None = None) -> Providers:
    """Every configured provider, by name; ConfigError on the first bad one."""
    settings = settings or get_settings()
    providers: Providers = {
        BUILTIN: BuiltinTokenProvider(),
        SERVICE: ServiceCredentialProvider(),
        "slack": SlackProvider("slack", api_url=settings.slack_api_url),
    }
    for name, raw in settings.credential_providers.items():
        providers[name] = _build_one(name, raw, settings)
    return providers


def validate_providers(settings: Settings | None = None) -> list[str]:
    """Check the provider configuration at start-up; the provider names, or ConfigError."""
    return sorted(build_providers(settings))


_cache: dict[int, Providers] = {}


def get_providers() -> Providers:
    """The process's providers for the current settings (built once per settings object)."""
    settings = get_settings()
    key = id(settings)
    if key not in _cache:
        _cache.clear()
        _cache[key] = build_providers(settings)
    return _cache[key]


def get_provider(name: str, providers: Providers | None = None) -> CredentialProvider:
    """The provider called `name`; IntegrationError when the ledger names one that is not configured."""
    found = (providers if providers is not None else get_providers()).get(name)
    if found is None:
        raise IntegrationError(f"credential provider {name!r} is not configured")
    return found
