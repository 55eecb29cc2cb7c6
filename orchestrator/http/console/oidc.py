"""OpenID Connect sign-in for the console (authorization code flow with PKCE)."""

from __future__ import annotations

from orchestrator.config import get_settings


def configured() -> bool:
    """True when an issuer and a client id are set."""
    settings = get_settings()
    return bool(settings.oidc_issuer and settings.oidc_client_id)
