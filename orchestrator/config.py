"""Process settings, read from the environment (and an optional `.env`) by pydantic-settings.

Every knob of the deployment lives here; every lifecycle timer and threshold lives in the policy
file instead (see `orchestrator.catalog.policy`).
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_VAR_DIR = Path("var")
CATALOG_FILE = "orchestrator.db"


def find_data_dir(start: Path | None = None) -> Path:
    """The default data directory: the nearest `var/` holding a catalog, from `start` (the working
    directory) upwards, so that a command run in a sub-folder of a deployment finds its catalog;
    else `start/var`."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_VAR_DIR / CATALOG_FILE).is_file():
            return folder / DEFAULT_VAR_DIR
    return here / DEFAULT_VAR_DIR


class Settings(BaseSettings):
    """All process settings; names map one-to-one onto upper-case environment variables."""

    model_config = SettingsConfigDict(env_file=".env", env_ignore_empty=True, extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Home of the embedded defaults (SQLite catalog and broker, archives, app logs, the generated "
        "credential key); when unset, the nearest ./var holding a catalog from the working directory up, else ./var. "
        "Admin commands refuse (no catalog at …) rather than create an empty catalog; migrate, up and worker create it",
    )
    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_VAR_DIR}/orchestrator.db",
        description="SQLAlchemy URL; sqlite:///path or postgresql+psycopg://user@host/db (DATA_DIR/orchestrator.db)",
    )
    broker_url: str = Field(
        default=f"sqla+sqlite:///{DEFAULT_VAR_DIR}/broker.db",
        description="Celery broker; redis://host:6379/0 in production, a SQLite-backed kombu transport by default",
    )
    embedded_broker_poll_seconds: float = Field(
        default=0.05,
        gt=0,
        le=5,
        description="How often the embedded (sqla+sqlite) broker's consumers look for work when no wake-up "
        "reaches them (with EMBEDDED_BROKER_WAKEUP a publish wakes them at once; this is the fallback)",
    )
    embedded_broker_wakeup: bool = Field(
        default=True,
        description="Embedded broker: each publish wakes the consumers through a Unix datagram socket (in the "
        "temp directory) instead of leaving them to the next poll; false: polling only",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis for locks, nudges and the revocation list; defaults to BROKER_URL when that is Redis",
    )
    policy_file: Path | None = Field(default=None, description="policy.yaml; the shipped default when unset")
    public_url: str = Field(
        default="",
        description="Base URL people reach the API at (links, token issuer, Slack buttons); "
        "http://API_HOST:API_PORT when unset (127.0.0.1 for a wildcard host)",
    )
    api_host: str = Field(default="127.0.0.1", description="Interface the API binds (0.0.0.0 in a container)")
    api_port: int = Field(default=8000, description="Port the API listens on")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    log_json: bool = Field(default=True, description="JSON log lines (false: human-readable console lines)")
    demo_data: bool = Field(default=False, description="Load the demo catalog on an empty database")

    github_webhook_secret: SecretStr | None = Field(
        default=None, description="GitHub webhook HMAC secret(s), comma-separated while rotating; refused when unset"
    )
    github_api_url: str = Field(default="https://api.github.com", description="GitHub REST API base URL")
    github_token: SecretStr | None = Field(default=None, description="GitHub token for API calls (reviews, redelivery)")

    slack_bot_token: SecretStr | None = Field(
        default=None, description="Slack bot token (xoxb-…); without it notifications go to the log"
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, description="Slack signing secret; Slack requests are refused while unset"
    )
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL")

    # --- credentials: token exchange, introspection, providers; see docs/credentials.md
    credential_key: SecretStr | None = Field(
        default=None,
        description="Encrypts signing keys and stored provider secrets at rest; var/credential.key when unset",
    )
    token_issuer: str | None = Field(default=None, description="`iss` of issued tokens; PUBLIC_URL when unset")
    jwks_max_age_seconds: int = Field(
        default=300, ge=0, le=86_400, description="how long verifiers may cache /.well-known/jwks.json (max-age)"
    )
    signing_keys_refresh_seconds: float = Field(
        default=5.0, gt=0, le=60, description="how often each API process reloads the signing keys it publishes"
    )
    idp_jwks_url: str | None = Field(default=None, description="JWKS URL of the identity provider's signing keys")
    idp_shared_key: SecretStr | None = Field(default=None, description="HS256 key of the identity provider")
    idp_issuer: str | None = Field(default=None, description="required `iss` of identity-provider tokens")
    idp_audience: str | None = Field(default=None, description="required `aud` of identity-provider tokens")
    idp_email_claim: str = Field(default="email", description="claim naming the person in an IdP token")
    credential_providers: dict[str, dict[str, str | int | float]] = Field(
        default_factory=dict,
        description=(
            'external providers by name (JSON), e.g. {"hr": {"type": "http", "url": "…", "secret_env": "HR_KEY"}}'
        ),
    )

    # Timers and sunset (docs/timers.md)
    scheduler_horizon_seconds: float = Field(
        default=600, gt=0, description="Deadlines due within this many seconds get an exact in-memory wake-up"
    )
    scheduler_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often the scheduler looks for new deadline rows (the nudge without Redis)"
    )
    scheduler_reload_seconds: float = Field(
        default=30, gt=0, description="How often the rolling horizon moves forward and loads what entered it"
    )
    scheduler_rebuild_seconds: float = Field(
        default=600, gt=0, description="How often the in-memory timers are rebuilt from scratch from the database"
    )
    scheduler_sweep_seconds: float = Field(default=10, gt=0, description="Interval of the overdue-deadline sweep")
    scheduler_catchup_rate: float = Field(
        default=500, gt=0, description="Most overdue deadlines per second the sweep enqueues (catch-up after downtime)"
    )
    scheduler_batch_size: int = Field(default=200, gt=0, description="Most deadline ids carried by one Celery task")
    scheduler_timer_resolution_ms: int = Field(
        default=100, gt=0, description="Deadlines due within the same slot of this width share one wake-up"
    )
    scheduler_redispatch_seconds: float = Field(
        default=300, gt=0, description="A deadline still pending this long after it was enqueued is enqueued again"
    )
    scheduler_lock_ttl_seconds: float = Field(
        default=30, gt=0, description="TTL of the Redis leader lock; a standby replica takes over within it"
    )
    scheduler_lock_name: str = Field(default="orchestrator:scheduler:leader", description="Redis key of the lock")
    deadline_nudge_channel: str = Field(
        default="orchestrator:deadlines", description="Redis pub/sub channel that wakes the scheduler after a change"
    )
    archive_url: str = Field(
        default=f"{DEFAULT_VAR_DIR}/archive",
        description="Where sunset archives go: a directory path (or file:// URL), or s3://bucket/prefix",
    )
    archive_s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint for s3:// archives (MinIO, moto); AWS when unset"
    )
    archive_s3_region: str = Field(default="us-east-1", description="Region for the S3 client")
    # Audit checkpoints (docs/admin-cli.md): the chain's head, signed and kept in the archive store
    audit_checkpoint_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 key signing audit checkpoints (base64 of the 32-byte seed, or PEM); "
        "var/audit-checkpoint.key when unset",
    )
    audit_checkpoint_seconds: float = Field(
        default=300, ge=0, description="How often the scheduler checkpoints the audit chain's head (0 disables)"
    )
    log_source_dir: Path = Field(
        default=DEFAULT_VAR_DIR / "app-logs", description="Runtime logs of app X are read from LOG_SOURCE_DIR/X/"
    )
    usage_record_interval_seconds: float = Field(
        default=300,
        ge=0,
        description="A usage ping within this many seconds of the last recorded use is not written again",
    )
    sunset_step_pause_seconds: float = Field(
        default=0, ge=0, description="Pause after each committed sunset step (crash drills and tests only)"
    )
    notification_sweep_seconds: float = Field(
        default=30.0, gt=0, description="How often the scheduler re-queues notifications whose message was lost"
    )
    sunset_resume_seconds: float = Field(
        default=15, gt=0, description="How often the scheduler resumes sunset runs whose worker's lease expired"
    )
    sunset_lease_seconds: float = Field(
        default=30,
        gt=0,
        description="Lease of the worker running a sunset, renewed every third of it: a dead worker's run resumes "
        "within this plus SUNSET_RESUME_SECONDS",
    )
    sunset_blocked_retry_seconds: float = Field(
        default=300, gt=0, description="A blocked sunset run (zombie credential) is tried again this often"
    )

    # Slack approvals (docs/slack.md)
    slack_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Timeout of one Slack Web API call (views.open uses at most 2.5 s)"
    )
    slack_rate_limit_retries: int = Field(
        default=3, ge=0, description="How many 429 answers a Slack call waits out (Retry-After) before failing"
    )

    # Event pipeline (docs/pipeline.md)
    relay_interval_seconds: float = Field(
        default=2.0, gt=0, description="How often the relay (a scheduler job, or `orchestrator relay`) looks for events"
    )
    relay_pending_after_seconds: float = Field(
        default=10.0, gt=0, description="An event committed but never published is published by the relay after this"
    )
    relay_stale_after_seconds: float = Field(
        default=600.0,
        gt=0,
        description="A published event still not handled after this is published again (broker lost it, worker died)",
    )
    relay_lease_stale_seconds: float = Field(
        default=45.0,
        gt=0,
        description="With Redis: a published event not handled after this and leased by no worker is published again "
        "(keep it above the usual queueing delay)",
    )
    event_lease_ttl_seconds: float = Field(
        default=20.0,
        gt=0,
        description="TTL of a worker's Redis lease on an event it runs (refreshed every third of it)",
    )
    relay_batch_size: int = Field(default=500, gt=0, description="Most events the relay claims in one transaction")
    event_max_attempts: int = Field(
        default=5, gt=0, description="Attempts per event before it is failed (transient errors) or parked (crashes)"
    )
    event_retry_base_seconds: float = Field(
        default=2.0, gt=0, description="First retry delay of a transient failure; doubles per attempt, with jitter"
    )
    event_retry_max_seconds: float = Field(
        default=300.0, gt=0, description="Cap of one retry delay (keep it below RELAY_STALE_AFTER_SECONDS)"
    )
    event_handler_modules: str = Field(
        default="", description="Extra comma-separated modules a worker imports to register event handlers"
    )
    github_webhook_max_bytes: int = Field(
        default=25 * 1024 * 1024, gt=0, description="Largest webhook body accepted (GitHub never sends more than 25 MB)"
    )
    github_hooks: str = Field(
        default="",
        description="Hooks the redelivery job watches, comma-separated: repos/OWNER/REPO/hooks/ID or orgs/ORG/hooks/ID",
    )
    github_redelivery_interval_seconds: float = Field(
        default=300.0, ge=0, description="How often failed GitHub deliveries are redelivered (0 disables the job)"
    )
    github_redelivery_lookback_hours: float = Field(
        default=72.0, gt=0, description="How far back the redelivery job looks (GitHub keeps 3 days)"
    )
    github_redelivery_max_attempts: int = Field(
        default=5, gt=0, description="A delivery that failed this many times is not redelivered again"
    )
    github_timeout_seconds: float = Field(default=10.0, gt=0, description="Timeout of one GitHub API call")

    # Automated reviews (docs/reviews.md)
    review_fetch: str = Field(
        default="auto",
        pattern=r"^(auto|git|github-tarball)$",
        description="How a review gets the source: git (clone), github-tarball (GitHub API tarball for GitHub "
        "repository URLs), or auto (the tarball for GitHub URLs when GITHUB_TOKEN is set, else git)",
    )
    review_repo_hosts: str = Field(
        default="github.com",
        description="Hosts whose https:// repositories may be registered and reviewed, comma-separated "
        "(no http://, ssh or git@ URLs)",
    )
    review_local_root: Path | None = Field(
        default=None,
        description="Directory under which local repository paths (and file:// URLs) may be registered and "
        "reviewed; unset: local repositories are refused",
    )
    review_fetch_timeout_seconds: float = Field(
        default=120, gt=0, description="Time limit of fetching one repository (git or tarball download)"
    )
    review_work_dir: Path | None = Field(
        default=None, description="Where checkouts are made (deleted after each review); the system temp dir when unset"
    )
    review_max_attempts: int = Field(
        default=2, ge=1, description="Attempts per review: one that times out or hits a network error is retried once"
    )
    review_redrive_after_seconds: float = Field(
        default=300,
        gt=0,
        description="A review still queued this long after it was published is published again (lost message)",
    )
    review_sweep_interval_seconds: float = Field(
        default=60, ge=0, description="How often the scheduler looks for reviews to re-publish (0 disables the sweep)"
    )
    review_engineering_channel: str = Field(
        default="#microapp-engineering",
        description="Where apps a review escalates are handed over (the engineering backlog channel)",
    )
    advisories_dir: Path | None = Field(
        default=None, description="Directory of OSV-format advisory JSON files the dependency check matches against"
    )
    health_metrics_seconds: float = Field(
        default=60,
        ge=0,
        description="How often the scheduler refreshes the invariant and operations gauges in Redis (0: off; "
        "the API then computes them itself, at most this often — 60 s when 0)",
    )
    worker_metrics_port: int | None = Field(
        default=None, description="Port where each Celery worker exports its Prometheus task metrics (off when unset)"
    )
    finding_salt: SecretStr | None = Field(
        default=None, description="Salt of finding fingerprints (HMAC-SHA256); a built-in constant when unset"
    )

    # --- identity provider (orchestrator.identity: SCIM, Okta event hooks, reconciliation) ---
    okta_hook_secrets: SecretStr | None = Field(
        default=None,
        description="Okta event hook Authorization header value(s), comma-separated while rotating; "
        "/hooks/okta refuses every call when unset",
    )
    idp_scim_url: str = Field(
        default="",
        description="Base URL of the IdP's SCIM API the reconciliation lists active users from "
        "(GET {url}/Users); off when unset, unless IDP_USERS_FILE is set",
    )
    idp_scim_token: SecretStr | None = Field(
        default=None, description="Bearer token for IDP_SCIM_URL (read-only access to Users)"
    )
    idp_users_file: Path | None = Field(
        default=None,
        description="A JSON export of the IdP's users (a SCIM ListResponse or a list of Users) to reconcile "
        "against instead of IDP_SCIM_URL",
    )
    idp_reconcile_max_fraction: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="The largest share of active people one reconciliation may mark as left; a listing that "
        "would remove more is refused (audited) as a probable IdP or export fault",
    )
    idp_page_size: int = Field(default=100, ge=1, le=1000, description="Users asked for per SCIM page")
    # --- advisories (issue 17): OSV exports fetched by `orchestrator advisories sync` and the daily job
    advisories_url_template: str = Field(
        default="https://osv-vulnerabilities.storage.googleapis.com/{ecosystem}/all.zip",
        description="Where `orchestrator advisories sync` downloads an ecosystem's OSV export (a zip of JSON "
        "advisories); `{ecosystem}` becomes PyPI or npm",
    )
    advisories_ecosystems: str = Field(
        default="PyPI,npm", description="Comma-separated ecosystems `orchestrator advisories sync` fetches"
    )
    advisories_sync_timeout_seconds: float = Field(
        default=600, gt=0, description="Time limit of one ecosystem's download (the old set is kept when it runs out)"
    )
    # ---- LLM connector (orchestrator.llm, orchestrator/http/llm.py)
    llm_openai_api_key: SecretStr | None = Field(
        default=None, description="IT's OpenAI key the connector calls with (apps never hold it); OpenAI off when unset"
    )
    llm_anthropic_api_key: SecretStr | None = Field(
        default=None, description="IT's Anthropic key the connector calls with; Anthropic off when unset"
    )
    llm_openai_base_url: str = Field(
        default="https://api.openai.com", description="OpenAI API base the connector forwards to (`/v1/...` appended)"
    )
    llm_anthropic_base_url: str = Field(
        default="https://api.anthropic.com",
        description="Anthropic API base the connector forwards to (`/v1/...` appended)",
    )
    llm_timeout_seconds: float = Field(default=120.0, gt=0, description="Read timeout of one upstream LLM call")
    llm_connect_timeout_seconds: float = Field(default=5.0, gt=0, description="Connect timeout to an LLM provider")
    llm_connect_attempts: int = Field(
        default=3, ge=1, le=10, description="Attempts to reach a provider when nothing was sent yet (never a resend)"
    )
    # ---- KPIs (orchestrator/kpis, docs/kpis.md)
    kpi_metrics_seconds: float = Field(
        default=300,
        ge=0,
        description="How often the scheduler recomputes the KPI gauges of /metrics and leaves them in Redis (0: off; "
        "the API then computes them itself, at most this often — 300 s when 0)",
    )
    kpi_metrics_window_days: int = Field(
        default=30, ge=1, le=1098, description="The window of the KPI gauges: the last this many days"
    )
    kpi_history_seconds: float = Field(
        default=86400,
        ge=0,
        description="At most how often the scheduler's KPI refresh keeps the snapshot KPIs (scoped-token share, "
        "orphan rate, …) in kpi_snapshot, for their charts over time (0: never)",
    )
    # --- web console (orchestrator/http/console); see README "Web console"
    console_secret: SecretStr | None = Field(
        default=None,
        description="Signs the console's session cookies (16+ characters; the same on every API process); "
        "when unset, a random key generated once in DATA_DIR/console.key",
    )
    console_idle_minutes: float = Field(
        default=30, gt=0, description="A console session ends after this many minutes without a request"
    )
    console_session_hours: float = Field(
        default=12, gt=0, description="A console session ends this many hours after sign-in, however active"
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL for console sign-in (its /.well-known/openid-configuration is read); "
        "API-token sign-in only when unset",
    )
    oidc_client_id: str | None = Field(default=None, description="The console's OIDC client id at the issuer")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="The console's OIDC client secret (unset for a public client: PKCE only)"
    )
    # ---- KPI responses (orchestrator/http/kpis.py); see README "KPIs"
    kpi_cache_seconds: float = Field(
        default=60,
        ge=0,
        description="How long GET /api/v1/kpis and /series reuse the figures computed for the same query, in each "
        "API process (the response's age_seconds says how old they are; 0: computed for every request)",
    )
    # ---- RabbitMQ broker (orchestrator/broker_config.py); see README "Choosing a broker"
    broker_delivery_limit: int = Field(
        default=10,
        ge=1,
        description="With BROKER_URL=amqp://: times a message may be returned to its queue (its worker died) before "
        "it is dead-lettered; the same on every process (a queue's arguments are fixed when first declared)",
    )

    # ---- embedded default at interactive speed (issue 19, part 0); see README "The embedded broker"
    worker_warm_reviews: bool = Field(
        default=False,
        description="Each worker process loads the review checks' advisory index in the background as it starts, "
        "so the first push after start-up does not wait for it (seconds); `orchestrator up` turns it on",
    )

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        # The embedded defaults all live in one data directory, found the same way from any folder.
        if self.data_dir is None:
            self.data_dir = find_data_dir()
        data_dir = self.data_dir.resolve()
        given = self.model_fields_set
        if "database_url" not in given:
            self.database_url = f"sqlite:///{data_dir / CATALOG_FILE}"
        if "broker_url" not in given:
            self.broker_url = f"sqla+sqlite:///{data_dir / 'broker.db'}"
        if "archive_url" not in given:
            self.archive_url = str(data_dir / "archive")
        if "log_source_dir" not in given:
            self.log_source_dir = data_dir / "app-logs"
        # Every link, the token issuer and the printed hints come from this one value, so a port
        # set with API_PORT is the port they all name.
        if not self.public_url:
            self.public_url = local_url(self.api_host, self.api_port)
        return self

    @property
    def credential_key_file(self) -> Path:
        """Where the generated credential key is kept when CREDENTIAL_KEY is unset."""
        assert self.data_dir is not None  # set by the validator
        return self.data_dir / "credential.key"

    def sqlite_paths(self) -> list[Path]:
        """The files of the embedded SQLite catalog and broker, for the URLs that use them."""
        paths = []
        for url in (self.database_url, self.broker_url):
            for prefix in ("sqlite:///", "sqla+sqlite:///"):
                if url.startswith(prefix) and url[len(prefix) :] not in ("", ":memory:"):
                    paths.append(Path(url[len(prefix) :].split("?", 1)[0]))
        return paths

    @property
    def effective_redis_url(self) -> str | None:
        """Redis URL for locks and pub/sub: REDIS_URL, else the broker when it is Redis."""
        if self.redis_url:
            return self.redis_url
        if self.broker_url.startswith(("redis://", "rediss://")):
            return self.broker_url
        return None

    @property
    def repo_hosts(self) -> frozenset[str]:
        """REVIEW_REPO_HOSTS as a set of lower-case host names."""
        return frozenset(h.strip().lower() for h in self.review_repo_hosts.split(",") if h.strip())

    @property
    def is_sqlite(self) -> bool:
        """True when the catalog lives in an embedded SQLite file."""
        return self.database_url.startswith("sqlite")


def local_url(host: str, port: int) -> str:
    """The http URL of an API bound to host:port, as reachable from this machine (wildcards → loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:  # an IPv6 literal
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class _SettingsCache:
    """`get_settings`: the settings read once per process, `cache_clear()` to read them again.

    Reading and storing happen under one lock with clearing, so a thread that began reading the
    environment before it changed cannot store what it read after a `cache_clear()` (functools'
    caches store a late result over a newer one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Settings | None = None

    def __call__(self) -> Settings:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value = Settings()
            return self._value

    def cache_clear(self) -> None:
        """Forget the settings read; the next call reads the environment again."""
        with self._lock:
            self._value = None


get_settings = _SettingsCache()
