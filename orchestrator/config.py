"""Process settings, read from the environment (and an optional `.env`) by pydantic-settings.

Every knob of the deployment lives here; every lifecycle timer and threshold lives in the policy
file instead (see `orchestrator.policy`).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")


class Settings(BaseSettings):
    """All process settings; names map one-to-one onto upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_VAR_DIR}/orchestrator.db",
        description="SQLAlchemy URL; sqlite:///path or postgresql+psycopg://user@host/db",
    )
    broker_url: str = Field(
        default=f"sqla+sqlite:///{DEFAULT_VAR_DIR}/broker.db",
        description="Celery broker; redis://host:6379/0 in production, a SQLite-backed kombu transport by default",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for locks, nudges and the revocation list; defaults to BROKER_URL when that is Redis",
    )
    policy_file: Path | None = Field(default=None, description="policy.yaml; the shipped default when unset")
    public_url: str = Field(default="http://127.0.0.1:8000", description="Base URL people reach the API at")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    log_level: str = "INFO"
    log_json: bool = True
    demo_data: bool = Field(default=False, description="Load the demo catalog on an empty database")

    github_webhook_secret: SecretStr | None = None
    github_api_url: str = "https://api.github.com"
    github_token: SecretStr | None = None

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    @property
    def effective_redis_url(self) -> str | None:
        """Redis URL for locks and pub/sub: REDIS_URL, else the broker when it is Redis."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def is_sqlite(self) -> bool:
        """True when the catalog lives in an embedded SQLite file."""
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once; tests call `get_settings.cache_clear()`."""
    return Settings()
