"""The IT team's policy (`policy.yaml`): every timer and threshold of the system, per data class.

A shipped default (`orchestrator/catalog/default_policy.yaml`) works out of the box; `POLICY_FILE` points at
another. A bad file raises ConfigError naming the field and the reason, and services refuse to start.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchestrator.catalog.enums import DataClass
from orchestrator.errors import ConfigError

DEFAULT_POLICY_PATH = Path(__file__).with_name("default_policy.yaml")

# ISO 8601 durations without years and months (whose length varies): P30D, PT10M, P1DT12H, P2W.
_ISO_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_DAYS_PER_UNIT = {"weeks": 7.0, "days": 1.0, "hours": 1 / 24, "minutes": 1 / 1440, "seconds": 1 / 86400}


def parse_days(value: Any) -> Any:
    """A duration in days: a number of days as before, or an ISO 8601 duration (`PT10M`, `P30D`, `P1DT12H`)."""
    if isinstance(value, str) and value.strip().upper().startswith("P"):
        text = value.strip().upper()
        match = _ISO_DURATION.match(text)
        if match is None or text in ("P", "PT") or text.endswith("T"):
            raise ValueError(f"{value!r} is not an ISO 8601 duration such as P30D or PT10M (for months or years: days)")
        return sum(float(amount) * _DAYS_PER_UNIT[unit] for unit, amount in match.groupdict().items() if amount)
    return value


def whole(days: float) -> int | float:
    """Days as an int when whole (so keys and texts written before fractional days stay the same)."""
    return int(days) if float(days).is_integer() else days


def _show_days(days: float) -> int | str:
    """Whole days as a number (as they were written), anything shorter as an ISO 8601 duration."""
    if float(days).is_integer():
        return int(days)
    return f"PT{round(days * 86400)}S"


# A policy duration: whole days (`30`) or an ISO 8601 duration; the value is in days (fractional for PT10M).
Days = Annotated[float, BeforeValidator(parse_days), PlainSerializer(_show_days)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApproverGroup(_Strict):
    """Who decides for a data class, and where they are asked."""

    slack_channel: str = Field(min_length=1, description="channel id or #name approval requests go to")
    approvers: list[str] = Field(min_length=1, description="emails of the people who may approve")
    escalation_channel: str | None = Field(default=None, description="where stale requests escalate to")
    escalation_approvers: list[str] = Field(default_factory=list)


class EscalationThresholds(_Strict):
    """Above these, an automated review hands the app to engineering."""

    max_external_endpoints: int = Field(ge=0)
    max_scopes: int = Field(ge=0)
    max_connectors: int = Field(ge=0)


LlmProvider = Literal["openai", "anthropic"]
LlmDetector = Literal["email", "phone", "card", "iban", "national_id", "secret"]
ALL_LLM_DETECTORS: tuple[LlmDetector, ...] = ("email", "phone", "card", "iban", "national_id", "secret")


class LlmPolicy(_Strict):
    """What the LLM connector lets apps of one data class do (off unless `enabled`)."""

    enabled: bool = Field(default=False, description="apps of this class may call an LLM through the connector")
    models: dict[LlmProvider, list[str]] = Field(
        default_factory=dict, description="allowed models per provider (openai, anthropic); a provider not listed is"
    )
    redaction: Literal["mask", "block", "off"] = Field(
        default="mask", description="mask: placeholders go upstream; block: any finding refuses the request"
    )
    detectors: list[LlmDetector] = Field(default_factory=lambda: list(ALL_LLM_DETECTORS))
    max_request_kb: int = Field(default=256, gt=0, le=32 * 1024)
    requests_per_minute: int = Field(default=60, gt=0)
    tokens_per_day: int = Field(default=1_000_000, gt=0, description="prompt + completion tokens per app per day")
    daily_budget_usd: float | None = Field(
        default=None,
        gt=0,
        le=1e9,
        description="spend per app per day in US dollars at `llm_prices` (unset: no budget)",
    )

    @field_validator("models")
    @classmethod
    def _non_empty_models(cls, models: dict[str, list[str]]) -> dict[str, list[str]]:
        for provider, names in models.items():
            if not names or any(not isinstance(n, str) or not n.strip() for n in names):
                raise ValueError(f"{provider}: list at least one model name (non-empty strings)")
        return models


class LlmPrice(_Strict):
    """A model's price in US dollars per million tokens (what the daily budgets are counted in)."""

    input: float = Field(ge=0, allow_inf_nan=False, description="per million prompt tokens")
    output: float = Field(default=0, ge=0, allow_inf_nan=False, description="per million completion tokens")


class DataClassPolicy(_Strict):
    """Timers, thresholds and guardrails for apps of one data class."""

    sandbox_ttl_days: Days = Field(gt=0)
    review_cadence_days: Days = Field(gt=0)
    max_extension_days: Days = Field(gt=0)
    expiry_notice_days: list[Days] = Field(min_length=1, description="days before expiry a notice goes out")
    approval_reminder_hours: float = Field(gt=0)
    approval_escalation_hours: float = Field(gt=0)
    inactivity_days: Days = Field(gt=0)
    approver_group: ApproverGroup
    allowed_scopes: list[str] = Field(default_factory=list)
    allowed_connectors: list[str] = Field(default_factory=list)
    escalation: EscalationThresholds
    owner_left_grace_days: Days = Field(gt=0)
    owner_manager_days: Days | None = Field(
        default=None,
        gt=0,
        description="days the leaver's manager has to name a new owner of an orphaned app before IT's "
        "group (the approver group) is asked; unset: a third of owner_left_grace_days",
    )
    log_retention_days: Days = Field(gt=0)
    auto_approve_clean: bool = False
    token_ttl_minutes: int = Field(gt=0, le=24 * 60, description="lifetime cap of an exchanged token")
    review_on_transfer: bool | None = Field(
        default=None,
        description="a transfer of an approved app to a new owner re-opens its review; "
        "unset: yes for restricted and regulated, no otherwise",
    )
    llm: LlmPolicy = Field(default_factory=LlmPolicy, description="the LLM connector's rules for this class")

    @field_validator("expiry_notice_days")
    @classmethod
    def _positive_and_unique(cls, days: list[float]) -> list[float]:
        if any(d <= 0 for d in days):
            raise ValueError("every notice day must be a positive number of days")
        if len(set(days)) != len(days):
            raise ValueError("notice days must not repeat")
        return sorted(days, reverse=True)

    # A field validator (not a model validator) so the error is located at approval_escalation_hours.
    @field_validator("approval_escalation_hours")
    @classmethod
    def _escalation_after_reminder(cls, hours: float, info: ValidationInfo) -> float:
        reminder = info.data.get("approval_reminder_hours")
        if reminder is not None and hours <= reminder:
            raise ValueError(f"must be greater than approval_reminder_hours ({reminder:g})")
        return hours


class BlockedDependency(_Strict):
    """A package nobody may depend on (optionally only some versions)."""

    name: str = Field(min_length=1)
    ecosystem: str = Field(default="any", pattern=r"^(any|pypi|npm)$")
    versions: str | None = Field(default=None, description="PEP 440 / semver range; all versions when unset")
    reason: str = ""


class Notifications(_Strict):
    """Flood control for messages to one person."""

    digest_threshold: int = Field(default=5, gt=0, description="more than this many in the window → one digest")
    digest_window_minutes: int = Field(default=10, gt=0)


class ReviewLimits(_Strict):
    """Bounds on what one automated review may read and how long it may take."""

    max_repo_mb: int = Field(default=500, gt=0)
    max_file_kb: int = Field(default=1024, gt=0)
    max_files: int = Field(default=50_000, gt=0)
    timeout_seconds: int = Field(default=300, gt=0)


class SunsetPolicy(_Strict):
    """How hard the sunset job tries before it calls a credential a zombie."""

    revoke_max_attempts: int = Field(default=5, gt=0)
    revoke_backoff_seconds: float = Field(default=30, gt=0, description="wait before the 2nd revocation attempt")
    revoke_backoff_max_seconds: float = Field(
        default=600, gt=0, description="cap of the doubling wait between attempts (below the broker visibility timeout)"
    )


class Policy(_Strict):
    """The whole effective policy."""

    data_classes: dict[DataClass, DataClassPolicy]
    blocked_dependencies: list[BlockedDependency] = Field(default_factory=list)
    approved_llm_connectors: list[str] = Field(default_factory=list)
    llm_prices: dict[str, LlmPrice] = Field(
        default_factory=dict, description="price per model for the connector's daily budgets (daily_budget_usd)"
    )
    allowed_secret_fingerprints: list[str] = Field(default_factory=list)
    notifications: Notifications = Notifications()
    review_limits: ReviewLimits = ReviewLimits()
    sunset: SunsetPolicy = SunsetPolicy()
    advisories_max_age_days: float = Field(
        default=30, gt=0, description="advisory sets older than this are reported by every review that uses them"
    )
    advisories_sync_hours: float = Field(
        default=24, ge=0, description="how often the scheduler's leader syncs the advisory sets from OSV (0: never)"
    )
    idp_reconcile_hours: float = Field(
        default=0,
        ge=0,
        description="how often the scheduler's leader reconciles catalogued people with the IdP's active users "
        "(IDP_SCIM_URL or IDP_USERS_FILE; 0: never)",
    )

    @field_validator("data_classes")
    @classmethod
    def _every_class(cls, classes: dict[DataClass, DataClassPolicy]) -> dict[DataClass, DataClassPolicy]:
        missing = [d.value for d in DataClass if d not in classes]
        if missing:
            raise ValueError(f"missing data class(es): {', '.join(missing)}")
        return classes

    @field_validator("data_classes")
    @classmethod
    def _regulated_fails_closed(cls, classes: dict[DataClass, DataClassPolicy]) -> dict[DataClass, DataClassPolicy]:
        regulated = classes.get(DataClass.regulated)
        if regulated is not None and regulated.llm.enabled and regulated.llm.redaction != "block":
            # Raised here, the error is located at data_classes; the message names the field.
            raise ValueError("regulated.llm.redaction must be `block` (regulated data fails closed)")
        return classes

    @model_validator(mode="after")
    def _budgets_are_priced(self) -> Policy:
        for data_class, rules in self.data_classes.items():
            llm = rules.llm
            if not llm.enabled or llm.daily_budget_usd is None:
                continue
            unpriced = [m for models in llm.models.values() for m in models if m not in self.llm_prices]
            if unpriced:
                # Raised here the error has no location: the message names the field.
                raise ValueError(
                    f"data_classes.{data_class.value}.llm.daily_budget_usd: no price in llm_prices for "
                    + ", ".join(sorted(set(unpriced)))
                )
        return self

    def llm_cost_micros(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """What a call costs at `llm_prices`, in millionths of a US dollar (0 for a model without a price)."""
        price = self.llm_prices.get(model)
        if price is None:
            return 0.0
        # A price per million tokens is, per token, that many millionths of a dollar.
        return prompt_tokens * price.input + completion_tokens * price.output

    def for_class(self, data_class: DataClass | str) -> DataClassPolicy:
        """The rules for one data class."""
        return self.data_classes[DataClass(data_class)]

    def reviews_on_transfer(self, data_class: DataClass | str) -> bool:
        """Whether handing an approved app of this class to a new owner re-opens its review."""
        explicit = self.for_class(data_class).review_on_transfer
        if explicit is not None:
            return explicit
        return DataClass(data_class) in (DataClass.restricted, DataClass.regulated)


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{field}: {err['msg']}")
    return "; ".join(parts)


def parse_policy(raw: Any, *, source: str = "policy") -> Policy:
    """Validate an already-parsed policy document; ConfigError names each bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the policy must be a mapping at the top level")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid policy: {_format_errors(exc)}", detail=exc.errors()) from None


def load_policy(path: Path | str | None = None) -> Policy:
    """Read and validate a policy file (the shipped default when `path` is None)."""
    path = Path(path) if path else DEFAULT_POLICY_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_policy(raw, source=str(path))


_cached: dict[str, Policy] = {}


def get_policy() -> Policy:
    """The process's policy from POLICY_FILE (or the default), validated once."""
    from orchestrator.config import get_settings

    key = str(get_settings().policy_file or DEFAULT_POLICY_PATH)
    if key not in _cached:
        _cached[key] = load_policy(key)
    return _cached[key]
